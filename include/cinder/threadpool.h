/* threadpool.h: fixed worker threads running one parallel-for at a time, for the CPU backend's
 * ops. The calling thread takes part as worker 0. Not reentrant: one caller thread only. */
#ifndef CINDER_THREADPOOL_H
#define CINDER_THREADPOOL_H

#include "cinder/common.h"

struct threadpool;

/* fn(ctx, i_thread, n_threads): each worker handles its share of the work. */
typedef void (*threadpool_task_fn)(void *ctx, int i_thread, int n_threads);

/* n_threads <= 0: all online cores. */
struct threadpool *threadpool_create(int n_threads);
void threadpool_destroy(struct threadpool *tp);
int threadpool_n_threads(const struct threadpool *tp);
/* Run fn on n (1..n_threads) threads and wait for all of them. */
void threadpool_run(struct threadpool *tp, int n, threadpool_task_fn fn, void *ctx);

#endif
