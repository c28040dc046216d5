/* metrics.c: Prometheus counters, gauges and histograms.
 *
 * Counters and gauges are single atomics, so the engine thread never waits on a scraper.
 * Histograms and the HTTP route table share one mutex: an observation is a bucket search and
 * three additions, far below the cost of the token it measures, and a scrape holds the lock
 * only while copying numbers into the output. The label sets are fixed at compile time except
 * cinder_http_requests_total, which is capped so a client sending odd URLs cannot grow it.
 * Bucket bounds are vLLM's, so its Grafana dashboards read our histograms unchanged. */
#include "cinder/metrics.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double metrics_ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                             0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                             20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double metrics_itl_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                            0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                            7.5,  10.0,  20.0, 40.0,  80.0};
static const double metrics_latency_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                                5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_ROUTES  64

struct metrics_histogram {
    const char *name;
    const char *help;
    const double *bounds;
    int n_bounds;
    uint64_t counts[METRICS_MAX_BUCKETS]; /* per bucket, not cumulative; last = +Inf */
    double sum;
    uint64_t count;
};

enum { METRICS_H_TTFT, METRICS_H_ITL, METRICS_H_E2E, METRICS_H_QUEUE, METRICS_N_H };

static const char *const metrics_reasons[] = {"stop", "length", "abort", "error"};

struct metrics_route {
    char route[48];
    int status;
    uint64_t n;
};

struct metrics {
    char *model_label; /* escaped for a label value */
    atomic_llong running, waiting;
    atomic_ullong kv_usage_bits; /* a double's bits */
    atomic_llong prefix_queries, prefix_hits, preemptions, prompt_tokens, generation_tokens;
    atomic_llong success[ARRAY_SIZE(metrics_reasons)];
    atomic_llong cancelled;

    pthread_mutex_t lock; /* histograms and routes */
    struct metrics_histogram h[METRICS_N_H];
    struct metrics_route routes[METRICS_MAX_ROUTES];
    int n_routes;
};

/* Label values escape backslash, double quote and newline (exposition format). */
static char *metrics_escape(const char *s)
{
    struct buf b;
    buf_init(&b);
    for (; *s; s++) {
        if (*s == '\\')
            buf_append_str(&b, "\\\\");
        else if (*s == '"')
            buf_append_str(&b, "\\\"");
        else if (*s == '\n')
            buf_append_str(&b, "\\n");
        else
            buf_append(&b, s, 1);
    }
    if (!b.data)
        buf_append(&b, "", 0);
    return buf_take(&b, NULL);
}

static void metrics_hist_init(struct metrics_histogram *h, const char *name, const char *help,
                              const double *bounds, size_t n)
{
    CND_ASSERT(n < METRICS_MAX_BUCKETS);
    h->name = name;
    h->help = help;
    h->bounds = bounds;
    h->n_bounds = (int)n;
}

struct metrics *metrics_create(const char *model_name)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    m->model_label = metrics_escape(model_name ? model_name : "");
    pthread_mutex_init(&m->lock, NULL);
    metrics_hist_init(&m->h[METRICS_H_TTFT], "vllm:time_to_first_token_seconds",
                      "Histogram of time to first token in seconds.", metrics_ttft_bounds,
                      ARRAY_SIZE(metrics_ttft_bounds));
    metrics_hist_init(&m->h[METRICS_H_ITL], "vllm:inter_token_latency_seconds",
                      "Histogram of inter-token latency in seconds.", metrics_itl_bounds,
                      ARRAY_SIZE(metrics_itl_bounds));
    metrics_hist_init(&m->h[METRICS_H_E2E], "vllm:e2e_request_latency_seconds",
                      "Histogram of end to end request latency in seconds.", metrics_latency_bounds,
                      ARRAY_SIZE(metrics_latency_bounds));
    metrics_hist_init(&m->h[METRICS_H_QUEUE], "vllm:request_queue_time_seconds",
                      "Histogram of time spent waiting in the queue in seconds.",
                      metrics_latency_bounds, ARRAY_SIZE(metrics_latency_bounds));
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->model_label);
    free(m);
}

void metrics_set_requests_running(struct metrics *m, int64_t n)
{
    atomic_store_explicit(&m->running, n, memory_order_relaxed);
}

void metrics_set_requests_waiting(struct metrics *m, int64_t n)
{
    atomic_store_explicit(&m->waiting, n, memory_order_relaxed);
}

void metrics_set_kv_cache_usage(struct metrics *m, double frac)
{
    uint64_t bits;
    memcpy(&bits, &frac, sizeof(bits));
    atomic_store_explicit(&m->kv_usage_bits, bits, memory_order_relaxed);
}

void metrics_add_prefix_cache(struct metrics *m, int64_t queried_tokens, int64_t hit_tokens)
{
    atomic_fetch_add_explicit(&m->prefix_queries, queried_tokens, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->prefix_hits, hit_tokens, memory_order_relaxed);
}

void metrics_add_preemptions(struct metrics *m, int64_t n)
{
    atomic_fetch_add_explicit(&m->preemptions, n, memory_order_relaxed);
}

void metrics_add_prompt_tokens(struct metrics *m, int64_t n)
{
    atomic_fetch_add_explicit(&m->prompt_tokens, n, memory_order_relaxed);
}

void metrics_add_generation_tokens(struct metrics *m, int64_t n)
{
    atomic_fetch_add_explicit(&m->generation_tokens, n, memory_order_relaxed);
}

void metrics_inc_request_success(struct metrics *m, const char *finished_reason)
{
    size_t i = 0;
    while (i < ARRAY_SIZE(metrics_reasons) - 1 && strcmp(finished_reason, metrics_reasons[i]))
        i++; /* anything unknown counts as "error", the last */
    atomic_fetch_add_explicit(&m->success[i], 1, memory_order_relaxed);
}

void metrics_inc_requests_cancelled(struct metrics *m)
{
    atomic_fetch_add_explicit(&m->cancelled, 1, memory_order_relaxed);
}

void metrics_inc_http_request(struct metrics *m, const char *route, int status)
{
    pthread_mutex_lock(&m->lock);
    int i;
    for (i = 0; i < m->n_routes; i++)
        if (m->routes[i].status == status && !strcmp(m->routes[i].route, route))
            break;
    if (i == m->n_routes) {
        if (m->n_routes == METRICS_MAX_ROUTES) {
            /* full: fold into the last slot, which we keep as "other" */
            i = METRICS_MAX_ROUTES - 1;
            snprintf(m->routes[i].route, sizeof(m->routes[i].route), "other");
            m->routes[i].status = 0;
        } else {
            m->n_routes++;
            bool last = m->n_routes == METRICS_MAX_ROUTES;
            snprintf(m->routes[i].route, sizeof(m->routes[i].route), "%s", last ? "other" : route);
            m->routes[i].status = last ? 0 : status;
        }
    }
    m->routes[i].n++;
    pthread_mutex_unlock(&m->lock);
}

static void metrics_observe(struct metrics *m, int which, double s)
{
    if (!(s >= 0) || !isfinite(s))
        return;
    struct metrics_histogram *h = &m->h[which];
    int b = 0;
    while (b < h->n_bounds && s > h->bounds[b])
        b++;
    pthread_mutex_lock(&m->lock);
    h->counts[b]++;
    h->sum += s;
    h->count++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe_ttft(struct metrics *m, double s)
{
    metrics_observe(m, METRICS_H_TTFT, s);
}

void metrics_observe_inter_token(struct metrics *m, double s)
{
    metrics_observe(m, METRICS_H_ITL, s);
}

void metrics_observe_e2e(struct metrics *m, double s)
{
    metrics_observe(m, METRICS_H_E2E, s);
}

void metrics_observe_queue_time(struct metrics *m, double s)
{
    metrics_observe(m, METRICS_H_QUEUE, s);
}

static void metrics_head(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_int(struct buf *out, const struct metrics *m, const char *name,
                        const char *type, const char *help, long long v)
{
    metrics_head(out, name, type, help);
    buf_appendf(out, "%s{model_name=\"%s\"} %lld\n", name, m->model_label, v);
}

void metrics_render(struct metrics *m, struct buf *out)
{
    metrics_int(out, m, "vllm:num_requests_running", "gauge",
                "Number of requests in model execution batches.",
                atomic_load_explicit(&m->running, memory_order_relaxed));
    metrics_int(out, m, "vllm:num_requests_waiting", "gauge",
                "Number of requests waiting to be processed.",
                atomic_load_explicit(&m->waiting, memory_order_relaxed));
    uint64_t bits = atomic_load_explicit(&m->kv_usage_bits, memory_order_relaxed);
    double kv;
    memcpy(&kv, &bits, sizeof(kv));
    metrics_head(out, "vllm:kv_cache_usage_perc", "gauge",
                 "KV-cache usage. 1 means 100 percent usage.");
    buf_appendf(out, "vllm:kv_cache_usage_perc{model_name=\"%s\"} %.15g\n", m->model_label, kv);

    metrics_int(out, m, "vllm:prefix_cache_queries_total", "counter",
                "Prefix cache queries, in terms of number of queried tokens.",
                atomic_load_explicit(&m->prefix_queries, memory_order_relaxed));
    metrics_int(out, m, "vllm:prefix_cache_hits_total", "counter",
                "Prefix cache hits, in terms of number of cached tokens.",
                atomic_load_explicit(&m->prefix_hits, memory_order_relaxed));
    metrics_int(out, m, "vllm:num_preemptions_total", "counter",
                "Cumulative number of preemptions from the engine.",
                atomic_load_explicit(&m->preemptions, memory_order_relaxed));
    metrics_int(out, m, "vllm:prompt_tokens_total", "counter",
                "Number of prefill tokens processed.",
                atomic_load_explicit(&m->prompt_tokens, memory_order_relaxed));
    metrics_int(out, m, "vllm:generation_tokens_total", "counter",
                "Number of generation tokens processed.",
                atomic_load_explicit(&m->generation_tokens, memory_order_relaxed));
    metrics_head(out, "vllm:request_success_total", "counter",
                 "Count of successfully processed requests.");
    for (size_t i = 0; i < ARRAY_SIZE(metrics_reasons); i++)
        buf_appendf(out,
                    "vllm:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %lld\n",
                    metrics_reasons[i], m->model_label,
                    (long long)atomic_load_explicit(&m->success[i], memory_order_relaxed));
    metrics_int(out, m, "cinder_requests_cancelled_total", "counter",
                "Requests cancelled because the client went away.",
                atomic_load_explicit(&m->cancelled, memory_order_relaxed));

    pthread_mutex_lock(&m->lock);
    metrics_head(out, "cinder_http_requests_total", "counter",
                 "HTTP requests by route and status code.");
    for (int i = 0; i < m->n_routes; i++) {
        char *route = metrics_escape(m->routes[i].route);
        buf_appendf(
            out, "cinder_http_requests_total{model_name=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
            m->model_label, route, m->routes[i].status, (unsigned long long)m->routes[i].n);
        free(route);
    }
    for (int k = 0; k < METRICS_N_H; k++) {
        const struct metrics_histogram *h = &m->h[k];
        metrics_head(out, h->name, "histogram", h->help);
        uint64_t cum = 0;
        for (int b = 0; b <= h->n_bounds; b++) {
            cum += h->counts[b];
            if (b < h->n_bounds)
                buf_appendf(out, "%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", h->name,
                            h->bounds[b], m->model_label, (unsigned long long)cum);
            else
                buf_appendf(out, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name,
                            m->model_label, (unsigned long long)cum);
        }
        buf_appendf(out, "%s_sum{model_name=\"%s\"} %.15g\n", h->name, m->model_label, h->sum);
        buf_appendf(out, "%s_count{model_name=\"%s\"} %llu\n", h->name, m->model_label,
                    (unsigned long long)h->count);
    }
    pthread_mutex_unlock(&m->lock);
}
