/* ctest-labels: unit */
/* test_chat_template.c: the Jinja chat-template interpreter (chat_template.h). Expected prompts
 * for the real templates in shared/models/templates were derived by hand from reading each
 * template (not by running another implementation). Also: every template parses and renders a
 * plain user turn; language features one by one; syntax errors carry a line number; hostile
 * templates hit the step/output/memory/depth limits instead of hanging. */
#include "test.h"
#include "cinder/chat_template.h"
#include "cinder/status.h"

#include <dirent.h>
#include <stdlib.h>

#define FIXED_NOW 1741132800 /* 2025-03-05 00:00:00 UTC */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* Render src; returns malloc'd output or NULL (err filled). */
static char *render_src(const char *src, const char *msgs_json, const char *extra_json, bool agp,
                        const char *bos, const char *eos, char *err, int *rc_out)
{
    err[0] = 0;
    struct chat_template *t = chat_template_create(src, err);
    if (!t) {
        if (rc_out)
            *rc_out = 1;
        return NULL;
    }
    cJSON *msgs = cJSON_Parse(msgs_json ? msgs_json : "[]");
    cJSON *extra = extra_json ? cJSON_Parse(extra_json) : NULL;
    if (!msgs || (extra_json && !extra)) {
        fprintf(stderr, "bad test JSON\n");
        abort();
    }
    struct chat_template_params p = {.add_generation_prompt = agp,
                                     .bos_token = bos,
                                     .eos_token = eos,
                                     .extra_context = extra,
                                     .now = FIXED_NOW};
    struct buf out;
    buf_init(&out);
    int rc = chat_template_render(t, msgs, &p, &out, err);
    if (rc_out)
        *rc_out = rc;
    cJSON_Delete(msgs);
    cJSON_Delete(extra);
    chat_template_destroy(t);
    char *s = out.data ? out.data : calloc(1, 1);
    if (rc) {
        free(s);
        return NULL;
    }
    return s;
}

static char *load_template(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/templates/%s.jinja", CND_SHARED_DIR, name);
    return read_file(path);
}

static void expect_model(const char *name, const char *msgs, const char *extra, bool agp,
                         const char *bos, const char *eos, const char *expected)
{
    char *src = load_template(name);
    if (!src) {
        fprintf(stderr, "skip %s: template missing\n", name);
        return;
    }
    char err[CND_ERR_LEN];
    char *got = render_src(src, msgs, extra, agp, bos, eos, err, NULL);
    CHECK_MSG(got != NULL, "%s: %s", name, err);
    if (got) {
        CHECK_MSG(strcmp(got, expected) == 0, "%s:\n--- got ---\n%s\n--- expected ---\n%s\n---",
                  name, got, expected);
    }
    free(got);
    free(src);
}

static void expect_model_error(const char *name, const char *msgs, const char *substr)
{
    char *src = load_template(name);
    if (!src)
        return;
    char err[CND_ERR_LEN];
    int rc = 0;
    char *got = render_src(src, msgs, NULL, true, "<s>", "</s>", err, &rc);
    CHECK_MSG(got == NULL && rc == -CND_EINVAL, "%s: expected an error", name);
    CHECK_MSG(strstr(err, substr) != NULL, "%s: err '%s' lacks '%s'", name, err, substr);
    free(got);
    free(src);
}

/* Inline template: expect output. */
static void expect_src(const char *src, const char *msgs, const char *extra, const char *expected)
{
    char err[CND_ERR_LEN];
    char *got = render_src(src, msgs, extra, true, "<s>", "</s>", err, NULL);
    CHECK_MSG(got != NULL, "template %s: %s", src, err);
    if (got)
        CHECK_MSG(strcmp(got, expected) == 0, "template %s:\n got [%s]\n want [%s]", src, got,
                  expected);
    free(got);
}

static void expect_src_error(const char *src, const char *substr)
{
    char err[CND_ERR_LEN];
    int rc = 0;
    char *got =
        render_src(src, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL, true, "", "", err, &rc);
    CHECK_MSG(got == NULL && rc != 0, "template %s: expected an error", src);
    CHECK_MSG(strstr(err, substr) != NULL, "template %s: err '%s' lacks '%s'", src, err, substr);
    free(got);
}

/* The expected renderings below are laid out as the templates print them, one output line
 * per source line, with macros between literals, which clang-format would tear apart. */
/* clang-format off */

/* ---- conversations ---- */

#define C_SYS_USER                                                                                 \
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"                                      \
    "{\"role\":\"user\",\"content\":\"Hi there\"}]"
#define C_USER "[{\"role\":\"user\",\"content\":\"What is 2+2?\"}]"
#define C_MULTI                                                                                    \
    "[{\"role\":\"user\",\"content\":\"Hi\"},"                                                    \
    "{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"},"                            \
    "{\"role\":\"user\",\"content\":\"Tell me a joke.\"}]"
#define C_THINK                                                                                    \
    "[{\"role\":\"user\",\"content\":\"Hi\"},"                                                    \
    "{\"role\":\"assistant\",\"content\":\"<think>\\nGreeting.\\n</think>\\n\\nHello!\"}]"
#define C_THINK3                                                                                   \
    "[{\"role\":\"user\",\"content\":\"Hi\"},"                                                    \
    "{\"role\":\"assistant\",\"content\":\"<think>\\nGreeting.\\n</think>\\n\\nHello!\"},"        \
    "{\"role\":\"user\",\"content\":\"Tell me a joke.\"}]"
#define C_TOOL                                                                                     \
    "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"                                     \
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abc123XYZ\","             \
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                               \
    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"                                          \
    "{\"role\":\"tool\",\"tool_call_id\":\"abc123XYZ\",\"content\":\"{\\\"temp\\\":20}\"}]"
#define TOOLS                                                                                      \
    "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                  \
    "\"description\":\"Get weather\",\"parameters\":{\"type\":\"object\",\"properties\":"         \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]}"
#define TOOL_JSON                                                                                  \
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get "  \
    "weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "    \
    "\"string\"}}, \"required\": [\"city\"]}}}"

/* ---- Llama 3.x ---- */

#define L3_BOS "<|begin_of_text|>"
#define L3_H(r) "<|start_header_id|>" r "<|end_header_id|>\n\n"

static void test_llama31(void)
{
    const char *n = "meta-llama-Llama-3.1-8B-Instruct";
    expect_model(n, C_USER, NULL, true, L3_BOS, "<|eot_id|>",
                 L3_BOS L3_H("system") "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 26 Jul 2024\n\n<|eot_id|>" L3_H("user") "What is 2+2?<|eot_id|>"
                 L3_H("assistant"));
    expect_model(n, C_SYS_USER, NULL, true, L3_BOS, "<|eot_id|>",
                 L3_BOS L3_H("system") "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>" L3_H("user")
                 "Hi there<|eot_id|>" L3_H("assistant"));
    expect_model(n, C_MULTI, NULL, false, L3_BOS, "<|eot_id|>",
                 L3_BOS L3_H("system") "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 26 Jul 2024\n\n<|eot_id|>" L3_H("user") "Hi<|eot_id|>"
                 L3_H("assistant") "Hello! How can I help?<|eot_id|>" L3_H("user")
                 "Tell me a joke.<|eot_id|>");
}

static void test_llama32(void)
{
    const char *n = "meta-llama-Llama-3.2-3B-Instruct";
    /* strftime_now("%d %b %Y") with the fixed clock */
    expect_model(n, C_SYS_USER, NULL, true, L3_BOS, "<|eot_id|>",
                 L3_BOS L3_H("system") "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 05 Mar 2025\n\nYou are terse.<|eot_id|>" L3_H("user")
                 "Hi there<|eot_id|>" L3_H("assistant"));
    /* tools go into the first user message (tools_in_user_message defaults to true); the tool
     * result is a string, which `is iterable`, so it is passed through tojson (quoted). */
    expect_model(n, C_TOOL, TOOLS, true, L3_BOS, "<|eot_id|>",
                 L3_BOS L3_H("system") "Environment: ipython\n"
                 "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 05 Mar 2025\n\n<|eot_id|>" L3_H("user")
                 "Given the following functions, please respond with a JSON for a function call "
                 "with its proper arguments that best answers the given prompt.\n\n"
                 "Respond in the format {\"name\": function name, \"parameters\": dictionary of "
                 "argument name and its value}.Do not use variables.\n\n"
                 "{\n"
                 "    \"type\": \"function\",\n"
                 "    \"function\": {\n"
                 "        \"name\": \"get_weather\",\n"
                 "        \"description\": \"Get weather\",\n"
                 "        \"parameters\": {\n"
                 "            \"type\": \"object\",\n"
                 "            \"properties\": {\n"
                 "                \"city\": {\n"
                 "                    \"type\": \"string\"\n"
                 "                }\n"
                 "            },\n"
                 "            \"required\": [\n"
                 "                \"city\"\n"
                 "            ]\n"
                 "        }\n"
                 "    }\n"
                 "}\n\n"
                 "Weather in Paris?<|eot_id|>" L3_H("assistant")
                 "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
                 L3_H("ipython") "\"{\\\"temp\\\":20}\"<|eot_id|>" L3_H("assistant"));
}

/* ---- Qwen ---- */

#define QWEN_DEFAULT_SYS "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define QWEN_TOOLS_BLOCK                                                                           \
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"            \
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"       \
    TOOL_JSON "\n</tools>\n\nFor each function call, return a json object with function name "    \
    "and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "            \
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"

static void test_qwen25(void)
{
    const char *n = "Qwen-Qwen2.5-7B-Instruct";
    expect_model(n, C_SYS_USER, NULL, true, "", "<|im_end|>",
                 "<|im_start|>system\nYou are terse.<|im_end|>\n"
                 "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
    expect_model(n, C_USER, NULL, true, "", "<|im_end|>",
                 "<|im_start|>system\n" QWEN_DEFAULT_SYS "<|im_end|>\n"
                 "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect_model(n, C_MULTI, NULL, false, "", "<|im_end|>",
                 "<|im_start|>system\n" QWEN_DEFAULT_SYS "<|im_end|>\n"
                 "<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                 "<|im_start|>user\nTell me a joke.<|im_end|>\n");
    expect_model(n, C_TOOL, TOOLS, true, "", "<|im_end|>",
                 "<|im_start|>system\n" QWEN_DEFAULT_SYS "\n\n" QWEN_TOOLS_BLOCK
                 "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                 "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                 "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
                 "<|im_start|>user\n<tool_response>\n{\"temp\":20}\n</tool_response><|im_end|>\n"
                 "<|im_start|>assistant\n");
}

static void test_qwen3(void)
{
    const char *n = "Qwen-Qwen3-0.6B";
    expect_model(n, C_SYS_USER, NULL, true, "", "<|im_end|>",
                 "<|im_start|>system\nYou are terse.<|im_end|>\n"
                 "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
    expect_model(n, C_USER, "{\"enable_thinking\": false}", true, "", "<|im_end|>",
                 "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    expect_model(n, C_MULTI, NULL, true, "", "<|im_end|>",
                 "<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                 "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n");
    /* last assistant turn after the last query keeps its reasoning */
    expect_model(n, C_THINK, NULL, false, "", "<|im_end|>",
                 "<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\nGreeting.\n</think>\n\nHello!<|im_end|>\n");
    /* ...earlier ones lose it */
    expect_model(n, C_THINK3, NULL, true, "", "<|im_end|>",
                 "<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\nHello!<|im_end|>\n"
                 "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n");
    /* null content next to tool_calls concatenates as "" (lenient; HF would raise) */
    expect_model(n, C_TOOL, TOOLS, true, "", "<|im_end|>",
                 "<|im_start|>system\n" QWEN_TOOLS_BLOCK
                 "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                 "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                 "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
                 "<|im_start|>user\n<tool_response>\n{\"temp\":20}\n</tool_response><|im_end|>\n"
                 "<|im_start|>assistant\n");
}

/* ---- Mistral Nemo ---- */

static void test_mistral_nemo(void)
{
    const char *n = "mistralai-Mistral-Nemo-Instruct-2407";
    expect_model(n, C_SYS_USER, NULL, true, "<s>", "</s>",
                 "<s>[INST]You are terse.\n\nHi there[/INST]");
    expect_model(n, C_USER, NULL, true, "<s>", "</s>", "<s>[INST]What is 2+2?[/INST]");
    expect_model(n, C_MULTI, NULL, true, "<s>", "</s>",
                 "<s>[INST]Hi[/INST]Hello! How can I help?</s>[INST]Tell me a joke.[/INST]");
    expect_model(n, C_TOOL, TOOLS, true, "<s>", "</s>",
                 "<s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": "
                 "\"get_weather\", \"description\": \"Get weather\", \"parameters\": {\"type\": "
                 "\"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": "
                 "[\"city\"]}}}][/AVAILABLE_TOOLS][INST]Weather in Paris?[/INST]"
                 "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, "
                 "\"id\": \"abc123XYZ\"}]</s>"
                 "[TOOL_RESULTS]{\"content\": {\"temp\":20}, \"call_id\": \"abc123XYZ\"}"
                 "[/TOOL_RESULTS]");
    expect_model_error(n, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]",
                       "conversation roles must alternate user/assistant/user/assistant/...");
}

/* ---- Gemma 2 ---- */

static void test_gemma2(void)
{
    const char *n = "google-gemma-2-2b-it";
    expect_model(n, C_USER, NULL, true, "<bos>", "<eos>",
                 "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n");
    expect_model(n, C_MULTI, NULL, true, "<bos>", "<eos>",
                 "<bos><start_of_turn>user\nHi<end_of_turn>\n"
                 "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
                 "<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n");
    expect_model_error(n, C_SYS_USER, "System role not supported");
    char *src = load_template(n);
    if (src) {
        char err[CND_ERR_LEN];
        char *got = render_src(src, C_SYS_USER, NULL, true, "<bos>", "", err, NULL);
        CHECK_STR(err, "System role not supported"); /* exactly the message, no line prefix */
        free(got);
        free(src);
    }
}

/* ---- Phi 3.5 ---- */

static void test_phi35(void)
{
    const char *n = "microsoft-Phi-3.5-mini-instruct";
    expect_model(n, C_SYS_USER, NULL, true, "<s>", "<|endoftext|>",
                 "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n");
    expect_model(n, C_MULTI, NULL, false, "<s>", "<|endoftext|>",
                 "<|user|>\nHi<|end|>\n<|assistant|>\nHello! How can I help?<|end|>\n"
                 "<|user|>\nTell me a joke.<|end|>\n<|endoftext|>");
}

/* ---- SmolLM3 ---- */

#define SMOL_HEAD(mode)                                                                            \
    "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: " mode \
    "\n\n## Custom Instructions\n\n"

static void test_smollm3(void)
{
    const char *n = "HuggingFaceTB-SmolLM3-3B";
    expect_model(n, C_SYS_USER, NULL, true, "", "<|im_end|>",
                 SMOL_HEAD("/think") "You are terse.\n\n<|im_end|>\n"
                 "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
    expect_model(n, C_MULTI, "{\"enable_thinking\": false}", true, "", "<|im_end|>",
                 SMOL_HEAD("/no_think")
                 "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n"
                 "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\n\n</think>\nHello! How can I help?<|im_end|>\n"
                 "<|im_start|>user\nTell me a joke.<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\n\n</think>\n");
    /* "/no_think" in the system prompt switches the mode and is removed from it */
    expect_model(n,
                 "[{\"role\":\"system\",\"content\":\"Be brief. /no_think\"},"
                 "{\"role\":\"user\",\"content\":\"Hi\"}]",
                 NULL, true, "", "<|im_end|>",
                 SMOL_HEAD("/no_think") "Be brief.\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\n\n</think>\n");
}

/* ---- DeepSeek R1 distills ---- */

#define DS_BOS "<｜begin▁of▁sentence｜>"

static void test_deepseek_r1(void)
{
    const char *n = "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B";
    /* this copy closes the think block unless enable_thinking is truthy */
    expect_model(n, C_SYS_USER, NULL, true, DS_BOS, "<｜end▁of▁sentence｜>",
                 DS_BOS "You are terse.<｜User｜>Hi there<｜Assistant｜><think>\n</think>");
    expect_model(n, C_THINK3, "{\"enable_thinking\": true}", true, DS_BOS, "",
                 DS_BOS "<｜User｜>Hi<｜Assistant｜>\n\nHello!<｜end▁of▁sentence｜>"
                 "<｜User｜>Tell me a joke.<｜Assistant｜><think>\n");
    expect_model(n, C_TOOL, TOOLS, true, DS_BOS, "",
                 DS_BOS "<｜User｜>Weather in Paris?"
                 "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>"
                 "get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>"
                 "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
                 "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\":20}<｜tool▁output▁end｜>"
                 "<｜tool▁outputs▁end｜>");
    expect_model("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", C_USER, NULL, true, DS_BOS, "",
                 DS_BOS "<｜User｜>What is 2+2?<｜Assistant｜><think>\n");
}

/* clang-format on */

/* ---- every template ---- */

static void test_all_templates(void)
{
    const char *dir = CND_SHARED_DIR "/models/templates";
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "skip: no %s\n", dir);
        return;
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".jinja") != 0)
            continue;
        char path[1024], err[CND_ERR_LEN] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *src = read_file(path);
        const char *convs[] = {C_USER, C_SYS_USER, C_MULTI, C_THINK3, C_TOOL};
        for (size_t i = 0; i < ARRAY_SIZE(convs); i++) {
            int rc = 0;
            char *got =
                render_src(src, convs[i], i == 4 ? TOOLS : NULL, true, "<s>", "</s>", err, &rc);
            /* a template may refuse a conversation shape by raising; it must not crash */
            if (i == 0)
                CHECK_MSG(got != NULL, "%s: %s", e->d_name, err);
            if (getenv("CND_SHOW_TEMPLATES"))
                printf("==== %s [%zu] %s\n%s\n", e->d_name, i, got ? "" : err, got ? got : "");
            if (got && i == 0)
                CHECK_MSG(strstr(got, "What is 2+2?") != NULL, "%s: user text missing", e->d_name);
            free(got);
        }
        free(src);
        n++;
    }
    closedir(d);
    CHECK(n > 10);
}

/* ---- language features ---- */

#define U1 "[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_whitespace(void)
{
    /* trim_blocks + lstrip_blocks */
    expect_src("a\n  {% if true %}\n  b\n  {% endif %}\nc", U1, NULL, "a\n  b\nc");
    expect_src("a  {{- ' b ' -}}  c", U1, NULL, "a b c");
    expect_src("a\n{%- if true -%}\n  b  \n{%- endif %}", U1, NULL, "ab");
    expect_src("{# comment #}\nx{#- c -#} y", U1, NULL, "xy");
    expect_src("x\n{%+ if true %}y{% endif %}", U1, NULL, "x\ny");
    expect_src("line\n", U1, NULL, "line"); /* keep_trailing_newline=False */
    expect_src("{{ 'a' }}\n{{ 'b' }}", U1, NULL, "a\nb");
}

static void test_expressions(void)
{
    expect_src("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}",
               U1, NULL, "7 3 -4 1 2 1024");
    expect_src("{{ 7 / 2 }} {{ 1.5 + 1 }} {{ 4 / 2 }} {{ 0.1 + 0.2 }}", U1, NULL,
               "3.5 2.5 2.0 0.30000000000000004");
    expect_src("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'x' + 'y' }}|{{ 'ab' * 3 }}", U1, NULL,
               "a1NoneTrue|xy|ababab");
    expect_src("{{ 'yes' if 1 < 2 else 'no' }}{{ 'x' if false }}", U1, NULL, "yes");
    expect_src("{{ not false and (true or false) }} {{ 1 in [1,2] }} {{ 'b' not in 'abc' }}", U1,
               NULL, "True True False");
    expect_src("{{ 'k' in {'k': 1} }} {{ [1,2] == [1,2] }} {{ 1 == 1.0 }} {{ 'a' < 'b' }}", U1,
               NULL, "True True True True");
    expect_src("{{ \"tab\\there\\n\" | length }} {{ 'it\\'s' }} {{ '\\u00e9' }}", U1, NULL,
               "9 it's \xc3\xa9");
    expect_src("{{ messages[0]['role'] }} {{ messages[0].content }} {{ messages[-1].role }}", U1,
               NULL, "user hi user");
    expect_src("{{ nothing }}|{{ nothing.attr.deeper }}|{{ nothing['x'] }}|"
               "{{ nothing is defined }}|{{ not nothing }}",
               U1, NULL, "|||False|True");
    expect_src("{{ [1,2,3,4,5][1:3] }} {{ [1,2,3][::-1] }} {{ 'hello'[1:] }} {{ 'hello'[-3:] }} "
               "{{ 'abc'[::-1] }} {{ [1,2,3,4,5][::2] }}",
               U1, NULL, "[2, 3] [3, 2, 1] ello llo cba [1, 3, 5]");
    expect_src("{{ {'a': 1, 'b': [1, 'x', none, true]} }} {{ (1, 2) }} {{ 'q\"' ~ [\"it's\"] }}",
               U1, NULL, "{'a': 1, 'b': [1, 'x', None, True]} [1, 2] q\"[\"it's\"]");
    expect_src("{{ 'a' 'b' }}{{ -3 | abs }}{{ 2.5 | round }}{{ 3.14159 | round(2) }}", U1, NULL,
               "ab32.03.14");
}

static void test_statements(void)
{
    expect_src("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
               "{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}",
               U1, NULL, "10TrueFalse33;21FalseFalse32;32FalseTrue31;");
    expect_src("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{% else %}none"
               "{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
               U1, NULL, "2142empty");
    expect_src("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
               "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
               U1, NULL, "013");
    expect_src("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}", U1, NULL,
               "a=1,b=2,");
    /* scoping: set in a loop does not leak; namespace does */
    expect_src("{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in [1] %}{% set x = 2 %}"
               "{% set ns.y = 2 %}{% endfor %}{{ x }}{{ ns.y }}",
               U1, NULL, "12");
    expect_src("{% set b %}in {{ 'block' }}{% endset %}[{{ b }}]", U1, NULL, "[in block]");
    expect_src("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
               "{{ greet('A') }} {{ greet('B', punct='?') }} {{ greet(name='C') }}",
               U1, NULL, "Hi A! Hi B? Hi C!");
    expect_src("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}"
               "{% endif %}{% endmacro %}{{ fact(5) }}",
               U1, NULL, "120");
    expect_src("{% filter upper %}abc{% endfilter %}{% generation %}g{% endgeneration %}", U1, NULL,
               "ABCg");
    expect_src("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}", U1, NULL, "c");
    expect_src("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set l = [] %}{% do l.append(3) %}"
               "{% set _ = l.append(4) %}{{ l }}{{ l.pop(0) }}{{ l }}",
               U1, NULL, "12[3, 4]3[4]");
    expect_src("{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}", U1, NULL,
               "<s></s>True");
    expect_src("{{ strftime_now('%Y-%m-%d %d %b %Y') }}", U1, NULL, "2025-03-05 05 Mar 2025");
}

static void test_filters(void)
{
    expect_src("{{ '  x  ' | trim }}|{{ 'aXb' | upper }}{{ 'AxB' | lower }}|{{ 'hello world' | "
               "title }}|{{ 'hELLO' | capitalize }}",
               U1, NULL, "x|AXBaxb|Hello World|Hello");
    expect_src("{{ undefined_var | default('d') }}{{ '' | default('e', true) }}"
               "{{ 'v' | d('no') }}{{ none | default('n') }}",
               U1, NULL, "devNone");
    expect_src("{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n'} | tojson }}", U1, NULL,
               "{\"a\": [1, 2.5, null, true], \"b\": \"é\\\"\\n\"}");
    expect_src("{{ {'a': {'b': []}, 'c': {}} | tojson(indent=2) }}", U1, NULL,
               "{\n  \"a\": {\n    \"b\": []\n  },\n  \"c\": {}\n}");
    expect_src("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}", U1, NULL,
               "{\"a\":2,\"b\":1}");
    expect_src("{{ [1, 2, 3] | join(', ') }} {{ [3, 1] | first }}{{ [3, 1] | last }} "
               "{{ 'abc' | list }} {{ [1, 1, 2] | unique | list }} {{ [3, 1, 2] | sort }} "
               "{{ ['b', 'A', 'c'] | sort(reverse=true) }}",
               U1, NULL, "1, 2, 3 31 ['a', 'b', 'c'] [1, 2] [1, 2, 3] ['c', 'b', 'A']");
    expect_src("{% set l = [{'r': 'u', 'n': 1}, {'r': 'a', 'n': 2}, {'r': 'u', 'n': 3}] %}"
               "{{ l | selectattr('r', 'equalto', 'u') | map(attribute='n') | list }} "
               "{{ l | rejectattr('r', 'equalto', 'u') | map(attribute='n') | join }} "
               "{{ l | map(attribute='r') | map('upper') | join('') }} "
               "{{ [0, 1, '', 'x'] | select | list }} {{ [1, 2, 3] | reject('odd') | list }} "
               "{{ l | selectattr('missing', 'defined') | list | length }}",
               U1, NULL, "[1, 3] 2 UAU [1, 'x'] [2] 0");
    expect_src("{% for k, v in {'b': 1, 'A': 2} | dictsort %}{{ k }}{{ v }}{% endfor %} "
               "{% for k, v in {'x': 1} | items %}{{ k }}{{ v }}{% endfor %} "
               "{{ 'a-b-c' | replace('-', '+') }} {{ 'a b' | split(' ') }} {{ '5' | int + 1 }} "
               "{{ '2.5' | float }} {{ 3 | string ~ 'x' }} {{ '<a>' | escape }} {{ 'x' | safe }}",
               U1, NULL, "A2b1 x1 a+b+c ['a', 'b'] 6 2.5 3x &lt;a&gt; x");
    expect_src("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}", U1, NULL,
               "a\n  b\n\n  c|  a\n  b");
    expect_src("{{ '{\"k\": [1, 2]}' | from_json }} {{ [1, 2, 3] | sum }} {{ [3, 1] | min }}"
               "{{ [3, 1] | max }} {{ messages | count }}",
               U1, NULL, "{'k': [1, 2]} 6 13 1");
}

static void test_tests_and_methods(void)
{
    expect_src("{{ 'x' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'x' is iterable }}"
               "{{ [] is sequence }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}"
               "{{ true is boolean }}{{ true is true }}{{ false is false }}{{ none is none }}"
               "{{ 3 is odd }}{{ 4 is even }}{{ 2 is equalto 2 }}{{ 2 is eq(3) }}"
               "{{ 6 is divisibleby 3 }}{{ 1 is not string }}{{ 1 is in [1] }}",
               U1, NULL,
               "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrueTrue");
    expect_src("{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|"
               "{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|"
               "{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}",
               U1, NULL, "a b|a|a|a|['a', 'b', '', 'c']|['a', 'b']|['a', 'b,c']|['a,b', 'c']");
    expect_src("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', "
               "'a')) }}{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'hello world'.title() }}"
               "{{ 'aaa'.replace('a', 'b', 2) }}{{ 'abcb'.find('b') }}{{ 'abc'.find('z') }}"
               "{{ '-'.join(['a', 'b']) }}{{ '{} is {x}'.format(1, x=2) }}",
               U1, NULL, "TrueTrueTrueABabHello Worldbba1-1a-b1 is 2");
    expect_src("{% set d = {'a': 1} %}{{ d.get('a') }}{{ d.get('b') }}{{ d.get('b', 5) }}"
               "{{ d.keys() | list }}{{ d.values() | list }}{{ d.items() | list }}"
               "{{ 'a' if d['a'] }}{{ d.a }}",
               U1, NULL, "1None5['a'][1][['a', 1]]a1");
    expect_src("{{ '%s-%d' % ('x', 3) }}{{ range(3) | list }}{{ range(1, 7, 2) | list }}"
               "{{ dict(a=1) }}{{ namespace(a=1).a }}",
               U1, NULL, "x-3[0, 1, 2][1, 3, 5]{'a': 1}1");
}

static void test_message_normalisation(void)
{
    /* text parts are joined; tool-call arguments parsed into an object */
    expect_src("{{ messages[0].content }}|{{ messages[1].tool_calls[0].function.arguments.x }}|"
               "{{ messages[1].tool_calls[0].function.arguments | tojson }}",
               "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
               "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"tool_calls\":"
               "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
               "\"{\\\"x\\\": 1.5}\"}}]}]",
               NULL, "ab|1.5|{\"x\": 1.5}");
    /* an image part keeps the list as is */
    expect_src("{{ messages[0].content | length }}{{ messages[0].content[1].type }}",
               "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]",
               NULL, "2image_url");
    /* parsed arguments still concatenate / print as the original string */
    expect_src("{{ 'a=' + messages[0].tool_calls[0].function.arguments }}|"
               "{{ messages[0].tool_calls[0].function.arguments }}|"
               "{{ messages[0].tool_calls[0].function.arguments is mapping }}",
               "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":"
               "{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]}]",
               NULL, "a={\"x\":1}|{\"x\":1}|True");
    /* null content: a runtime error on it retries with "" (is none still works first time) */
    expect_src("[{{ messages[0].content.strip() }}]", "[{\"role\":\"assistant\",\"content\":null}]",
               NULL, "[]");
    expect_src("{{ messages[0].content is none }}", "[{\"role\":\"assistant\",\"content\":null}]",
               NULL, "True");
    expect_src("{{ tools[0].name }} {{ flag }}", U1, "{\"tools\":[{\"name\":\"t\"}],\"flag\":true}",
               "t True");
}

static void test_syntax_errors(void)
{
    char err[CND_ERR_LEN];
    struct {
        const char *src;
        const char *msg;
    } cases[] = {
        {"hello\n{% if x %}\nno end", "line 3"},
        {"a\nb\n{{ 1 + }}", "line 3"},
        {"{% for in x %}{% endfor %}", "line 1"},
        {"x\n{% endif %}", "line 2: unexpected 'endif'"},
        {"{% bogus %}", "line 1: unknown or unexpected statement 'bogus'"},
        {"\n\n{{ 'unterminated }}", "line 3"},
        {"{{ x", "line 1"},
        {"{# never closed", "line 1"},
        {"{% if x %}{% else %}{% elif y %}{% endif %}", "line 1"},
        {"{{ a b }}", "line 1"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        err[0] = 0;
        struct chat_template *t = chat_template_create(cases[i].src, err);
        CHECK_MSG(t == NULL, "should not parse: %s", cases[i].src);
        CHECK_MSG(strstr(err, cases[i].msg) != NULL, "%s: err '%s' lacks '%s'", cases[i].src, err,
                  cases[i].msg);
        chat_template_destroy(t);
    }
    /* deep nesting is a parse error, not a stack overflow */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    char *p = deep;
    p += sprintf(p, "{{ ");
    for (size_t i = 0; i < depth; i++)
        *p++ = '(';
    *p++ = '1';
    for (size_t i = 0; i < depth; i++)
        *p++ = ')';
    sprintf(p, " }}");
    struct chat_template *t = chat_template_create(deep, err);
    CHECK(t == NULL);
    CHECK(strstr(err, "nested too deeply") != NULL);
    free(deep);
    depth = 5000;
    deep = malloc(depth * 24 + 64);
    p = deep;
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "{%% if 1 %%}");
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "{%% endif %%}");
    t = chat_template_create(deep, err);
    CHECK(t == NULL);
    free(deep);
}

static void test_runtime_errors_and_limits(void)
{
    expect_src_error("a\n{{ raise_exception('boom ' ~ 1) }}", "boom 1");
    expect_src_error("\n{{ undefined_fn() }}", "line 2: 'undefined_fn' is undefined");
    expect_src_error("{{ 1 / 0 }}", "division by zero");
    expect_src_error("{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'");
    expect_src_error("{{ 1 is nosuchtest }}", "unknown test");
    expect_src_error("{{ {} < 1 }}", "cannot compare");
    /* endless work: nested loops hit the step limit (or output limit) */
    expect_src_error("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}"
                     "{% endfor %}",
                     "limit");
    expect_src_error("{% for i in range(1000000) %}{% for j in range(1000000) %}"
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "{% endfor %}{% endfor %}",
                     "exceeded");
    /* unbounded recursion */
    expect_src_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
    /* exponential string growth: memory limit */
    expect_src_error("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}"
                     "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
                     "limit");
    expect_src_error("{{ 'x' * 100000000000 }}", "too large");
    expect_src_error("{{ range(100000000000) | length }}", "too large");
    /* appending to the list being iterated cannot loop forever */
    expect_src("{% set l = [1] %}{% for x in l %}{% do l.append(x) %}{% endfor %}{{ l | length }}",
               U1, NULL, "2");
}

static void test_fallback(void)
{
    cJSON *m = cJSON_Parse(C_MULTI);
    struct chat_template_params p = {.add_generation_prompt = true, .bos_token = "<s>"};
    struct buf out;
    buf_init(&out);
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(chat_template_render_fallback(m, &p, &out, err), 0);
    CHECK_STR(out.data, "<s>user: Hi\nassistant: Hello! How can I help?\nuser: Tell me a joke.\n"
                        "assistant:");
    buf_deinit(&out);
    cJSON_Delete(m);
    m = cJSON_Parse("[{\"content\":\"x\"}]");
    CHECK_EQ_INT(chat_template_render_fallback(m, &p, &out, err), -CND_EINVAL);
    buf_deinit(&out);
    cJSON_Delete(m);
}

int main(void)
{
    RUN(test_whitespace);
    RUN(test_expressions);
    RUN(test_statements);
    RUN(test_filters);
    RUN(test_tests_and_methods);
    RUN(test_message_normalisation);
    RUN(test_syntax_errors);
    RUN(test_runtime_errors_and_limits);
    RUN(test_fallback);
    RUN(test_llama31);
    RUN(test_llama32);
    RUN(test_qwen25);
    RUN(test_qwen3);
    RUN(test_mistral_nemo);
    RUN(test_gemma2);
    RUN(test_phi35);
    RUN(test_smollm3);
    RUN(test_deepseek_r1);
    RUN(test_all_templates);
    return test_summary();
}
