/* threadpool.h: fixed worker threads running one parallel job at a time, for the CPU backend's
 * ops. The calling thread takes part as thread 0. Not reentrant: one caller thread only.
 *
 * Work is handed out as chunks from a shared counter, and a job ends when every chunk is done,
 * not when every worker has checked in: on a shared machine a descheduled worker simply misses
 * the job instead of stalling it for a scheduler slice. */
#ifndef CINDER_THREADPOOL_H
#define CINDER_THREADPOOL_H

#include "cinder/common.h"

struct threadpool;

/* fn(ctx, i_thread, n_threads): one share of the work (see threadpool_run). */
typedef void (*threadpool_task_fn)(void *ctx, int i_thread, int n_threads);
/* fn(ctx, chunk, i_thread): one chunk; i_thread (< the n given to run_chunks) is unique among
 * the threads running chunks of the job at the same time (for per-thread scratch). */
typedef void (*threadpool_chunk_fn)(void *ctx, int64_t chunk, int i_thread);

/* n_threads <= 0: all online cores. */
struct threadpool *threadpool_create(int n_threads);
void threadpool_destroy(struct threadpool *tp);
int threadpool_n_threads(const struct threadpool *tp);
/* Run fn(ctx, i, n) once for every i in [0, n) (n: 1..n_threads) on up to n threads and wait
 * for all of them. The shares may run on any thread, several on one thread, in any order. */
void threadpool_run(struct threadpool *tp, int n, threadpool_task_fn fn, void *ctx);
/* Run fn for every chunk in [0, n_chunks) on up to n threads (dynamic hand-out), and wait. */
void threadpool_run_chunks(struct threadpool *tp, int n, int64_t n_chunks, threadpool_chunk_fn fn,
                           void *ctx);

#endif
