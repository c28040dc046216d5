/* ctest-labels: unit */
/* test_metrics.c: exposition lines, histogram buckets, label escaping, the route cap, and
 * counts that add up when several threads record at once. */
#include "cinder/metrics.h"
#include "test.h"

#include <pthread.h>

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return true;
    return false;
}

#define CHECK_LINE(text, line) CHECK_MSG(has_line(text, line), "missing line: %s", line)

static void test_render(void)
{
    struct metrics *m = metrics_create("tiny \"q\"");
    metrics_set_requests_running(m, 3);
    metrics_set_requests_waiting(m, 2);
    metrics_set_kv_cache_usage(m, 0.25);
    metrics_add_prefix_cache(m, 100, 40);
    metrics_add_preemptions(m, 1);
    metrics_add_prompt_tokens(m, 10);
    metrics_add_prompt_tokens(m, 5);
    metrics_add_generation_tokens(m, 7);
    metrics_inc_request_success(m, "stop");
    metrics_inc_request_success(m, "length");
    metrics_inc_request_success(m, "length");
    metrics_inc_request_success(m, "weird");
    metrics_inc_requests_cancelled(m);
    metrics_inc_http_request(m, "/v1/chat/completions", 200);
    metrics_inc_http_request(m, "/v1/chat/completions", 200);
    metrics_inc_http_request(m, "/v1/chat/completions", 400);
    metrics_observe_ttft(m, 0.03);
    metrics_observe_ttft(m, 0.001); /* on a bound: le is inclusive */
    metrics_observe_ttft(m, 5000);
    metrics_observe_ttft(m, -1);  /* ignored */
    metrics_observe_ttft(m, NAN); /* ignored */
    metrics_observe_inter_token(m, 0.02);
    metrics_observe_e2e(m, 1.2);
    metrics_observe_queue_time(m, 0.0);

    struct buf b;
    buf_init(&b);
    metrics_render(m, &b);
    const char *t = b.data;
    const char *ml = "model_name=\"tiny \\\"q\\\"\"";
    char line[256];
#define L(fmt, ...) (snprintf(line, sizeof(line), fmt, __VA_ARGS__), line)
    CHECK_LINE(t, "# TYPE vllm:num_requests_running gauge");
    CHECK_LINE(t, L("vllm:num_requests_running{%s} 3", ml));
    CHECK_LINE(t, L("vllm:num_requests_waiting{%s} 2", ml));
    CHECK_LINE(t, L("vllm:kv_cache_usage_perc{%s} 0.25", ml));
    CHECK_LINE(t, "# TYPE vllm:prefix_cache_queries_total counter");
    CHECK_LINE(t, L("vllm:prefix_cache_queries_total{%s} 100", ml));
    CHECK_LINE(t, L("vllm:prefix_cache_hits_total{%s} 40", ml));
    CHECK_LINE(t, L("vllm:num_preemptions_total{%s} 1", ml));
    CHECK_LINE(t, L("vllm:prompt_tokens_total{%s} 15", ml));
    CHECK_LINE(t, L("vllm:generation_tokens_total{%s} 7", ml));
    CHECK_LINE(t, L("vllm:request_success_total{finished_reason=\"stop\",%s} 1", ml));
    CHECK_LINE(t, L("vllm:request_success_total{finished_reason=\"length\",%s} 2", ml));
    CHECK_LINE(t, L("vllm:request_success_total{finished_reason=\"abort\",%s} 0", ml));
    CHECK_LINE(t, L("vllm:request_success_total{finished_reason=\"error\",%s} 1", ml));
    CHECK_LINE(t, L("cinder_requests_cancelled_total{%s} 1", ml));
    CHECK_LINE(
        t, L("cinder_http_requests_total{%s,route=\"/v1/chat/completions\",status=\"200\"} 2", ml));
    CHECK_LINE(
        t, L("cinder_http_requests_total{%s,route=\"/v1/chat/completions\",status=\"400\"} 1", ml));
    CHECK_LINE(t, "# TYPE vllm:time_to_first_token_seconds histogram");
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_bucket{le=\"0.001\",%s} 1", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_bucket{le=\"0.02\",%s} 1", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_bucket{le=\"0.04\",%s} 2", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_bucket{le=\"2560\",%s} 2", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",%s} 3", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_count{%s} 3", ml));
    CHECK_LINE(t, L("vllm:time_to_first_token_seconds_sum{%s} 5000.031", ml));
    CHECK_LINE(t, L("vllm:inter_token_latency_seconds_bucket{le=\"0.025\",%s} 1", ml));
    CHECK_LINE(t, L("vllm:e2e_request_latency_seconds_bucket{le=\"1\",%s} 0", ml));
    CHECK_LINE(t, L("vllm:e2e_request_latency_seconds_bucket{le=\"1.5\",%s} 1", ml));
    CHECK_LINE(t, L("vllm:request_queue_time_seconds_bucket{le=\"0.3\",%s} 1", ml));
    /* every non-comment line is "name{labels} value" */
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl)
            break;
        if (*p != '#')
            CHECK(memchr(p, '{', (size_t)(nl - p)) && memchr(p, '}', (size_t)(nl - p)) &&
                  memchr(p, ' ', (size_t)(nl - p)));
        p = nl + 1;
    }
    buf_deinit(&b);
    metrics_destroy(m);
    metrics_destroy(NULL);
}

static void test_route_cap(void)
{
    struct metrics *m = metrics_create("m");
    char route[32];
    for (int i = 0; i < 200; i++) {
        snprintf(route, sizeof(route), "/r%d", i);
        metrics_inc_http_request(m, route, 404);
    }
    struct buf b;
    buf_init(&b);
    metrics_render(m, &b);
    int n = 0;
    for (const char *p = b.data; (p = strstr(p, "\ncinder_http_requests_total{")); p++)
        n++;
    CHECK_EQ_INT(n, 64);
    CHECK(has_line(
        b.data, "cinder_http_requests_total{model_name=\"m\",route=\"other\",status=\"0\"} 137"));
    buf_deinit(&b);
    metrics_destroy(m);
}

static void *worker(void *arg)
{
    struct metrics *m = arg;
    for (int i = 0; i < 10000; i++) {
        metrics_add_generation_tokens(m, 1);
        metrics_observe_inter_token(m, 0.05);
        metrics_inc_http_request(m, "/v1/completions", 200);
    }
    return NULL;
}

static void test_threads(void)
{
    struct metrics *m = metrics_create("m");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, m);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct buf b;
    buf_init(&b);
    metrics_render(m, &b);
    CHECK_LINE(b.data, "vllm:generation_tokens_total{model_name=\"m\"} 40000");
    CHECK_LINE(b.data, "vllm:inter_token_latency_seconds_count{model_name=\"m\"} 40000");
    CHECK_LINE(b.data, "cinder_http_requests_total{model_name=\"m\",route=\"/v1/completions\","
                       "status=\"200\"} 40000");
    buf_deinit(&b);
    metrics_destroy(m);
}

int main(void)
{
    RUN(test_render);
    RUN(test_route_cap);
    RUN(test_threads);
    return test_summary();
}
