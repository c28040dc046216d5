/* metrics.h: Prometheus metrics with vLLM's names (so existing vLLM dashboards work), plus a
 * few of our own, rendered in the text exposition format (version 0.0.4) for /metrics.
 * Every sample carries the label model_name. All functions are thread-safe: the engine thread
 * records token and scheduler figures while HTTP threads record requests and render. */
#ifndef CINDER_METRICS_H
#define CINDER_METRICS_H

#include "cinder/buf.h"
#include "cinder/common.h"

struct metrics;

/* model_name is copied. */
struct metrics *metrics_create(const char *model_name);
void metrics_destroy(struct metrics *m);

/* gauges: vllm:num_requests_running, vllm:num_requests_waiting, vllm:kv_cache_usage_perc
 * (a fraction: 1 = full) */
void metrics_set_requests_running(struct metrics *m, int64_t n);
void metrics_set_requests_waiting(struct metrics *m, int64_t n);
void metrics_set_kv_cache_usage(struct metrics *m, double frac);

/* counters */
void metrics_add_prefix_cache(struct metrics *m, int64_t queried_tokens, int64_t hit_tokens);
void metrics_add_preemptions(struct metrics *m, int64_t n);
void metrics_add_prompt_tokens(struct metrics *m, int64_t n);
void metrics_add_generation_tokens(struct metrics *m, int64_t n);
/* vllm:request_success_total{finished_reason}: "stop" | "length" | "abort" | "error" */
void metrics_inc_request_success(struct metrics *m, const char *finished_reason);
void metrics_inc_requests_cancelled(struct metrics *m); /* cinder_requests_cancelled_total */
/* cinder_http_requests_total{route,status}. route should be a fixed route pattern (not the raw
 * URL) so the label set stays small; beyond 64 pairs they count as route="other". */
void metrics_inc_http_request(struct metrics *m, const char *route, int status);

/* histograms, in seconds */
void metrics_observe_ttft(struct metrics *m, double s);
void metrics_observe_inter_token(struct metrics *m, double s);
void metrics_observe_e2e(struct metrics *m, double s);
void metrics_observe_queue_time(struct metrics *m, double s);

/* Append the whole exposition. Content-Type: text/plain; version=0.0.4; charset=utf-8 */
void metrics_render(struct metrics *m, struct buf *out);

#endif
