/* ctest-labels: unit */
/* test_openai.c: request parsing and response shapes against golden JSON in tests/data/openai:
 * parse_ok.json (bodies that parse, with the fields expected), parse_fail.json (bodies that
 * fail, with status and param), responses.json (builder inputs and the expected object,
 * compared structurally). Plus UTF-8 escaping, ids and the tokenize endpoints. */
#include "cinder/openai.h"
#include "cinder/status.h"
#include "test.h"

#include <stdlib.h>

#define DATA CND_SOURCE_DIR "/tests/data/openai/"

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    struct buf b;
    buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    if (!j)
        fprintf(stderr, "%s: bad JSON near %.40s\n", path, cJSON_GetErrorPtr());
    buf_deinit(&b);
    return j;
}

static enum openai_kind kind_of(const cJSON *c)
{
    const cJSON *k = cJSON_GetObjectItem(c, "kind");
    return strcmp(k->valuestring, "chat") == 0 ? OPENAI_KIND_CHAT : OPENAI_KIND_COMPLETION;
}

static void check_expect(const char *name, const struct openai_request *r, const cJSON *exp)
{
    const struct gen_params *g = &r->params;
    for (const cJSON *x = exp->child; x; x = x->next) {
        const char *k = x->string;
        double v = x->valuedouble;
        if (!strcmp(k, "model")) {
            if (cJSON_IsNull(x))
                CHECK_MSG(r->model == NULL, "%s: model", name);
            else
                CHECK_MSG(r->model && !strcmp(r->model, x->valuestring), "%s: model", name);
        } else if (!strcmp(k, "n_msgs")) {
            CHECK_MSG(r->n_msgs == (int)v, "%s: n_msgs %d", name, r->n_msgs);
        } else if (!strncmp(k, "content", 7)) {
            int i = atoi(k + 7);
            CHECK_MSG(i < r->n_msgs && !strcmp(r->msgs[i].content, x->valuestring), "%s: %s", name,
                      k);
        } else if (!strcmp(k, "role_last")) {
            CHECK_MSG(!strcmp(r->msgs[r->n_msgs - 1].role_name, x->valuestring), "%s", name);
        } else if (!strcmp(k, "name_last")) {
            const char *nm = r->msgs[r->n_msgs - 1].name;
            CHECK_MSG(nm && !strcmp(nm, x->valuestring), "%s: name", name);
        } else if (!strcmp(k, "prompt")) {
            CHECK_MSG(r->prompt && !strcmp(r->prompt, x->valuestring), "%s: prompt", name);
        } else if (!strcmp(k, "prompt_tokens")) {
            CHECK_MSG(r->n_prompt_tokens == cJSON_GetArraySize(x), "%s: n tokens", name);
            int i = 0;
            for (const cJSON *t = x->child; t && i < r->n_prompt_tokens; t = t->next, i++)
                CHECK_MSG(r->prompt_tokens[i] == t->valueint, "%s: token %d", name, i);
        } else if (!strcmp(k, "max_tokens")) {
            CHECK_MSG(g->max_tokens == (int)v, "%s: max_tokens %d", name, g->max_tokens);
        } else if (!strcmp(k, "min_tokens")) {
            CHECK_MSG(g->min_tokens == (int)v, "%s: min_tokens", name);
        } else if (!strcmp(k, "temperature")) {
            CHECK_MSG(fabs(g->sampling.temperature - v) < 1e-6, "%s: temperature", name);
        } else if (!strcmp(k, "top_p")) {
            CHECK_MSG(fabs(g->sampling.top_p - v) < 1e-6, "%s: top_p", name);
        } else if (!strcmp(k, "top_k")) {
            CHECK_MSG(g->sampling.top_k == (int)v, "%s: top_k", name);
        } else if (!strcmp(k, "min_p")) {
            CHECK_MSG(fabs(g->sampling.min_p - v) < 1e-6, "%s: min_p", name);
        } else if (!strcmp(k, "seed")) {
            CHECK_MSG(g->sampling.has_seed && g->sampling.seed == (uint64_t)v, "%s: seed", name);
        } else if (!strcmp(k, "presence_penalty")) {
            CHECK_MSG(fabs(g->sampling.presence_penalty - v) < 1e-6, "%s", name);
        } else if (!strcmp(k, "frequency_penalty")) {
            CHECK_MSG(fabs(g->sampling.frequency_penalty - v) < 1e-6, "%s", name);
        } else if (!strcmp(k, "repetition_penalty")) {
            CHECK_MSG(fabs(g->sampling.repetition_penalty - v) < 1e-6, "%s", name);
        } else if (!strcmp(k, "n_stop")) {
            CHECK_MSG(g->n_stop == (int)v, "%s: n_stop", name);
        } else if (!strcmp(k, "stop")) {
            CHECK_MSG(g->n_stop == cJSON_GetArraySize(x), "%s: n_stop %d", name, g->n_stop);
            int i = 0;
            for (const cJSON *s = x->child; s && i < g->n_stop; s = s->next, i++)
                CHECK_MSG(!strcmp(g->stop[i], s->valuestring), "%s: stop %d", name, i);
        } else if (!strcmp(k, "logit_bias")) {
            CHECK_MSG(g->sampling.n_logit_bias == cJSON_GetArraySize(x), "%s: n bias", name);
            int i = 0;
            for (const cJSON *b = x->child; b && i < g->sampling.n_logit_bias; b = b->next, i++) {
                CHECK(g->sampling.logit_bias[i].token == atoi(b->string));
                CHECK(fabs(g->sampling.logit_bias[i].bias - b->valuedouble) < 1e-6);
            }
        } else if (!strcmp(k, "logprobs")) {
            CHECK_MSG(g->logprobs == cJSON_IsTrue(x), "%s: logprobs", name);
        } else if (!strcmp(k, "top_logprobs")) {
            CHECK_MSG(g->top_logprobs == (int)v, "%s: top_logprobs", name);
        } else if (!strcmp(k, "stream")) {
            CHECK_MSG(r->stream == cJSON_IsTrue(x), "%s: stream", name);
        } else if (!strcmp(k, "include_usage")) {
            CHECK_MSG(r->include_usage == cJSON_IsTrue(x), "%s: include_usage", name);
        } else if (!strcmp(k, "ignore_eos")) {
            CHECK_MSG(g->ignore_eos == cJSON_IsTrue(x), "%s: ignore_eos", name);
        } else if (!strcmp(k, "add_generation_prompt")) {
            CHECK_MSG(r->add_generation_prompt == cJSON_IsTrue(x), "%s: agp", name);
        } else {
            CHECK_MSG(0, "%s: test knows no expectation '%s'", name, k);
        }
    }
}

static void test_parse_ok(void)
{
    cJSON *cases = load_json(DATA "parse_ok.json");
    CHECK(cases != NULL);
    if (!cases)
        return;
    int n = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n++) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "body"));
        struct openai_request req;
        struct openai_error e = {0};
        int rc = openai_request_parse(body, strlen(body), kind_of(c), &req, &e);
        CHECK_MSG(rc == 0, "%s: %s (param %s)", name, e.message, e.param);
        if (rc == 0)
            check_expect(name, &req, cJSON_GetObjectItem(c, "expect"));
        openai_request_deinit(&req);
        free(body);
    }
    CHECK(n >= 10);
    cJSON_Delete(cases);
}

static void test_parse_fail(void)
{
    cJSON *cases = load_json(DATA "parse_fail.json");
    CHECK(cases != NULL);
    if (!cases)
        return;
    int n = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n++) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *raw = cJSON_GetObjectItem(c, "raw");
        char *body =
            raw ? strdup(raw->valuestring) : cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "body"));
        struct openai_request req;
        struct openai_error e = {0};
        int rc = openai_request_parse(body, strlen(body), kind_of(c), &req, &e);
        CHECK_MSG(rc < 0, "%s: parsed", name);
        int status = cJSON_GetObjectItem(c, "status")->valueint;
        CHECK_MSG(e.http_status == status, "%s: status %d", name, e.http_status);
        const cJSON *param = cJSON_GetObjectItem(c, "param");
        if (cJSON_IsNull(param))
            CHECK_MSG(e.param[0] == 0, "%s: param '%s'", name, e.param);
        else
            CHECK_MSG(!strcmp(e.param, param->valuestring), "%s: param '%s' (%s)", name, e.param,
                      e.message);
        CHECK_MSG(e.message[0] != 0, "%s: no message", name);
        CHECK(e.type && !strcmp(e.type, "invalid_request_error"));
        CHECK(req.model == NULL && req.messages == NULL && req.prompt == NULL &&
              req.params.n_stop == 0);
        openai_request_deinit(&req);
        free(body);
    }
    CHECK(n >= 40);
    cJSON_Delete(cases);
}

/* Builder inputs from a golden case; storage lives in the caller's arrays. */
static void choice_from(const cJSON *j, struct openai_choice *ch, struct openai_logprob *lps,
                        struct openai_top_logprob (*tops)[8])
{
    memset(ch, 0, sizeof(*ch));
    const cJSON *t = cJSON_GetObjectItem(j, "text");
    ch->text = t ? t->valuestring : NULL;
    ch->len = t ? strlen(t->valuestring) : 0;
    const cJSON *fr = cJSON_GetObjectItem(j, "finish_reason");
    ch->finish_reason = fr ? fr->valuestring : NULL;
    ch->first = cJSON_IsTrue(cJSON_GetObjectItem(j, "first"));
    const cJSON *lp = cJSON_GetObjectItem(j, "logprobs");
    if (!lp)
        return;
    ch->has_logprobs = true;
    ch->logprobs = lps;
    int i = 0;
    for (const cJSON *x = lp->child; x; x = x->next, i++) {
        const char *tok = cJSON_GetObjectItem(x, "token")->valuestring;
        lps[i] = (struct openai_logprob){
            tok, strlen(tok), (float)cJSON_GetObjectItem(x, "logprob")->valuedouble, tops[i], 0, 0};
        const cJSON *off = cJSON_GetObjectItem(x, "text_offset");
        lps[i].text_offset = off ? off->valueint : 0;
        int k = 0;
        for (const cJSON *tp = cJSON_GetObjectItem(x, "top")->child; tp; tp = tp->next, k++) {
            const char *tt = cJSON_GetArrayItem(tp, 0)->valuestring;
            tops[i][k] = (struct openai_top_logprob){tt, strlen(tt),
                                                     (float)cJSON_GetArrayItem(tp, 1)->valuedouble};
        }
        lps[i].n_top = k;
    }
    ch->n_logprobs = i;
}

static void test_responses(void)
{
    cJSON *cases = load_json(DATA "responses.json");
    CHECK(cases != NULL);
    if (!cases)
        return;
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *builder = cJSON_GetObjectItem(c, "builder")->valuestring;
        struct openai_meta m = {0};
        const cJSON *mj = cJSON_GetObjectItem(c, "meta");
        if (mj) {
            m.id = cJSON_GetObjectItem(mj, "id")->valuestring;
            m.model = cJSON_GetObjectItem(mj, "model")->valuestring;
            m.created = (int64_t)cJSON_GetObjectItem(mj, "created")->valuedouble;
            const cJSON *fp = cJSON_GetObjectItem(mj, "system_fingerprint");
            m.system_fingerprint = fp ? fp->valuestring : NULL;
        }
        struct openai_choice ch;
        struct openai_logprob lps[8];
        struct openai_top_logprob tops[8][8];
        const cJSON *cj = cJSON_GetObjectItem(c, "choice");
        if (cj)
            choice_from(cj, &ch, lps, tops);
        struct openai_usage u = {0};
        const cJSON *uj = cJSON_GetObjectItem(c, "usage");
        if (uj)
            u = (struct openai_usage){cJSON_GetObjectItem(uj, "prompt_tokens")->valueint,
                                      cJSON_GetObjectItem(uj, "completion_tokens")->valueint,
                                      cJSON_GetObjectItem(uj, "cached_tokens")->valueint};
        bool wun = cJSON_IsTrue(cJSON_GetObjectItem(c, "with_usage_null"));
        struct openai_model_info models[4];
        int n_models = 0;
        for (const cJSON *x =
                 cJSON_GetObjectItem(c, "models") ? cJSON_GetObjectItem(c, "models")->child : NULL;
             x; x = x->next, n_models++)
            models[n_models] =
                (struct openai_model_info){cJSON_GetObjectItem(x, "id")->valuestring,
                                           (int64_t)cJSON_GetObjectItem(x, "created")->valuedouble,
                                           cJSON_GetObjectItem(x, "max_model_len")->valueint};

        struct buf out;
        buf_init(&out);
        if (!strcmp(builder, "chat_completion")) {
            openai_chat_completion_json(&out, &m, &ch, &u);
        } else if (!strcmp(builder, "chat_chunk")) {
            openai_chat_chunk_json(&out, &m, cj ? &ch : NULL, &u, wun);
        } else if (!strcmp(builder, "completion")) {
            openai_completion_json(&out, &m, &ch, &u);
        } else if (!strcmp(builder, "completion_chunk")) {
            openai_completion_chunk_json(&out, &m, cj ? &ch : NULL, &u, wun);
        } else if (!strcmp(builder, "models")) {
            openai_models_json(&out, models, n_models);
        } else if (!strcmp(builder, "model")) {
            openai_model_json(&out, &models[0]);
        } else if (!strcmp(builder, "tokenize")) {
            int32_t toks[16];
            int nt = 0;
            for (const cJSON *t = cJSON_GetObjectItem(c, "tokens")->child; t; t = t->next)
                toks[nt++] = t->valueint;
            openai_tokenize_json(&out, toks, nt, cJSON_GetObjectItem(c, "max_model_len")->valueint);
        } else if (!strcmp(builder, "detokenize")) {
            const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
            openai_detokenize_json(&out, t, strlen(t));
        } else if (!strcmp(builder, "error")) {
            const cJSON *ej = cJSON_GetObjectItem(c, "error");
            const cJSON *p = cJSON_GetObjectItem(ej, "param");
            struct openai_error e;
            openai_error_set(&e, cJSON_GetObjectItem(ej, "status")->valueint,
                             p ? p->valuestring : NULL, "%s",
                             cJSON_GetObjectItem(ej, "message")->valuestring);
            openai_error_json(&out, &e);
        } else {
            CHECK_MSG(0, "unknown builder %s", builder);
        }
        cJSON *got = cJSON_ParseWithLength(out.data, out.len);
        CHECK_MSG(got != NULL, "%s: output is not JSON: %s", name, out.data);
        const cJSON *exp = cJSON_GetObjectItem(c, "expect");
        if (got && !cJSON_Compare(got, exp, true)) {
            char *e = cJSON_PrintUnformatted(exp);
            CHECK_MSG(0, "%s:\n got  %s\n want %s", name, out.data, e);
            free(e);
        }
        cJSON_Delete(got);
        buf_deinit(&out);
    }
    cJSON_Delete(cases);
}

static void test_json_string(void)
{
    struct buf b;
    buf_init(&b);
    /* control chars, quotes, a NUL, a lone continuation byte, a truncated 3-byte char, an
     * overlong encoding, a surrogate, and a valid 4-byte char */
    static const char s[] = "a\"\\\n\x01\x00z\x80y\xE2\x82"
                            "\xC0\xAF\xED\xA0\x80\xF0\x9F\x98\x80";
    openai_json_string(&b, s, sizeof(s) - 1);
    CHECK_STR(b.data,
              "\"a\\\"\\\\\\n\\u0001\\u0000z\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD"
              "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xF0\x9F\x98\x80\"");
    cJSON *j = cJSON_Parse(b.data);
    CHECK(j != NULL);
    cJSON_Delete(j);

    /* a token that is half a UTF-8 character: "token" shows U+FFFD, "bytes" the truth */
    buf_reset(&b);
    struct openai_logprob lp = {"\xE2\x82", 2, -INFINITY, NULL, 0, 0};
    struct openai_choice ch = {.text = "", .has_logprobs = true, .logprobs = &lp, .n_logprobs = 1};
    struct openai_meta m = {"chatcmpl-1", "m", 1, NULL};
    openai_chat_chunk_json(&b, &m, &ch, NULL, false);
    j = cJSON_Parse(b.data);
    CHECK_MSG(j != NULL, "%s", b.data);
    CHECK(strstr(b.data, "\"bytes\":[226,130]") != NULL);
    CHECK(strstr(b.data, "\"logprob\":-9999") != NULL);
    cJSON_Delete(j);
    buf_deinit(&b);
}

static void test_ids_and_errors(void)
{
    char a[64], b[64];
    openai_make_id(a, sizeof(a), "chatcmpl-");
    openai_make_id(b, sizeof(b), "chatcmpl-");
    CHECK(strncmp(a, "chatcmpl-", 9) == 0 && strlen(a) == 9 + 24);
    CHECK(strcmp(a, b) != 0);
    for (const char *p = a + 9; *p; p++)
        CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));

    struct openai_error e;
    CHECK(openai_check_model(NULL, "tiny", &e) == 0);
    CHECK(openai_check_model("tiny", "tiny", &e) == 0);
    CHECK(openai_check_model("gpt-4", "tiny", &e) == CND_ENOTFOUND);
    CHECK_EQ_INT(e.http_status, 404);
    CHECK_STR(e.code, "model_not_found");
    CHECK_STR(e.type, "not_found_error");
    struct buf out;
    buf_init(&out);
    openai_error_json(&out, &e);
    CHECK(strstr(out.data, "\"code\":\"model_not_found\"") != NULL);
    CHECK(strstr(out.data, "\"param\":\"model\"") != NULL);
    buf_deinit(&out);

    openai_error_from_status(&e, CND_EOVERLOAD, "queue full");
    CHECK_EQ_INT(e.http_status, 503);
    openai_error_from_status(&e, CND_ERANGE, "prompt too long");
    CHECK_EQ_INT(e.http_status, 400);
    openai_error_from_status(&e, CND_EINTERNAL, NULL);
    CHECK_EQ_INT(e.http_status, 500);
    CHECK_STR(e.type, "server_error");
}

static void test_tokenize(void)
{
    struct openai_tokenize_request t;
    struct openai_error e;
    const char *b1 = "{\"model\":\"m\",\"prompt\":\"hello\"}";
    CHECK(openai_tokenize_parse(b1, strlen(b1), &t, &e) == 0);
    CHECK_STR(t.prompt, "hello");
    CHECK_STR(t.model, "m");
    CHECK(t.add_special_tokens && t.msgs == NULL);
    openai_tokenize_deinit(&t);

    const char *b2 = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                     "\"add_generation_prompt\":false}";
    CHECK(openai_tokenize_parse(b2, strlen(b2), &t, &e) == 0);
    CHECK_EQ_INT(t.n_msgs, 1);
    CHECK(!t.add_special_tokens && !t.add_generation_prompt && t.prompt == NULL);
    openai_tokenize_deinit(&t);

    const char *b3 = "{\"prompt\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    CHECK(openai_tokenize_parse(b3, strlen(b3), &t, &e) < 0);
    CHECK_EQ_INT(e.http_status, 400);
    openai_tokenize_deinit(&t);
    const char *b4 = "{}";
    CHECK(openai_tokenize_parse(b4, strlen(b4), &t, &e) < 0);
    CHECK_STR(e.param, "prompt");
    const char *b5 = "{\"prompt\":\"x\",\"add_special_tokens\":\"no\"}";
    CHECK(openai_tokenize_parse(b5, strlen(b5), &t, &e) < 0);
    CHECK_STR(e.param, "add_special_tokens");

    struct openai_detokenize_request d;
    const char *d1 = "{\"model\":\"m\",\"tokens\":[1,2,3]}";
    CHECK(openai_detokenize_parse(d1, strlen(d1), &d, &e) == 0);
    CHECK_EQ_INT(d.n_tokens, 3);
    CHECK(d.n_tokens == 3 && d.tokens[2] == 3);
    openai_detokenize_deinit(&d);
    const char *d2 = "{\"tokens\":[1,\"a\"]}";
    CHECK(openai_detokenize_parse(d2, strlen(d2), &d, &e) < 0);
    CHECK_STR(e.param, "tokens");
    const char *d3 = "{\"tokens\":5}";
    CHECK(openai_detokenize_parse(d3, strlen(d3), &d, &e) < 0);
    const char *d4 = "{\"tokens\":[]}";
    CHECK(openai_detokenize_parse(d4, strlen(d4), &d, &e) == 0);
    CHECK_EQ_INT(d.n_tokens, 0);
    openai_detokenize_deinit(&d);
}

static void test_gen_params_copy(void)
{
    const char *body = "{\"prompt\":\"x\",\"stop\":[\"a\",\"bb\"],\"logit_bias\":{\"3\":1}}";
    struct openai_request r;
    struct openai_error e;
    CHECK(openai_request_parse(body, strlen(body), OPENAI_KIND_COMPLETION, &r, &e) == 0);
    struct gen_params c;
    gen_params_copy(&c, &r.params);
    openai_request_deinit(&r);
    CHECK_EQ_INT(c.n_stop, 2);
    CHECK_STR(c.stop[1], "bb");
    CHECK(c.sampling.n_logit_bias == 1 && c.sampling.logit_bias[0].token == 3);
    gen_params_deinit(&c);
}

int main(void)
{
    RUN(test_parse_ok);
    RUN(test_parse_fail);
    RUN(test_responses);
    RUN(test_json_string);
    RUN(test_ids_and_errors);
    RUN(test_tokenize);
    RUN(test_gen_params_copy);
    return test_summary();
}
