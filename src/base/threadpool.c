/* threadpool.c: fork-join workers for the CPU backend. A step runs dozens of ops, each split
 * across threads, so hand-off latency matters more than fairness: workers spin briefly on a
 * generation counter before sleeping on a condition variable, and the caller works as thread 0
 * instead of waiting idle. */
#include "cinder/threadpool.h"
#include "cinder/xalloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* pause iterations (~40-140 cycles each) before a worker sleeps, resp. the caller yields */
#define THREADPOOL_SPIN 20000

struct threadpool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for every job */
    atomic_int n_pending;   /* workers still running the current job */
    atomic_bool stop;
    atomic_int n_sleeping;  /* workers blocked (or about to block) on the condition variable */
    /* the current job (written before generation is bumped) */
    threadpool_task_fn fn;
    void *ctx;
    int n_active;
};

struct worker_arg {
    struct threadpool *tp;
    int index;
};

static void *threadpool_worker(void *p)
{
    struct worker_arg *arg = p;
    struct threadpool *tp = arg->tp;
    int index = arg->index;
    free(arg);
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&tp->generation, memory_order_acquire)) == seen &&
               !atomic_load(&tp->stop)) {
            if (++spins < THREADPOOL_SPIN) {
#if defined(__x86_64__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&tp->lock);
            atomic_fetch_add(&tp->n_sleeping, 1);
            while (atomic_load(&tp->generation) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->wake, &tp->lock);
            atomic_fetch_sub(&tp->n_sleeping, 1);
            pthread_mutex_unlock(&tp->lock);
            spins = 0;
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = gen;
        if (index < tp->n_active)
            tp->fn(tp->ctx, index, tp->n_active);
        atomic_fetch_sub_explicit(&tp->n_pending, 1, memory_order_release);
    }
}

struct threadpool *threadpool_create(int n_threads)
{
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    struct threadpool *tp = xcalloc(1, sizeof(*tp));
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->lock, NULL);
    pthread_cond_init(&tp->wake, NULL);
    tp->threads = xcalloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *arg = xmalloc(sizeof(*arg));
        arg->tp = tp;
        arg->index = i;
        pthread_create(&tp->threads[i], NULL, threadpool_worker, arg);
    }
    return tp;
}

void threadpool_destroy(struct threadpool *tp)
{
    if (!tp)
        return;
    pthread_mutex_lock(&tp->lock);
    atomic_store(&tp->stop, true);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->lock);
    for (int i = 1; i < tp->n_threads; i++)
        pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->lock);
    pthread_cond_destroy(&tp->wake);
    free(tp->threads);
    free(tp);
}

int threadpool_n_threads(const struct threadpool *tp)
{
    return tp->n_threads;
}

void threadpool_run(struct threadpool *tp, int n, threadpool_task_fn fn, void *ctx)
{
    if (n > tp->n_threads)
        n = tp->n_threads;
    if (n <= 1 || tp->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_active = n;
    atomic_store(&tp->n_pending, tp->n_threads - 1);
    /* Dekker pair with the worker's n_sleeping increment: either the worker sees the new
     * generation before it waits, or we see it sleeping and wake it under the lock. Spinning
     * workers need no syscall. */
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->lock);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->lock);
    }
    fn(ctx, 0, n);
    int spins = 0;
    while (atomic_load_explicit(&tp->n_pending, memory_order_acquire) > 0) {
        if (++spins > THREADPOOL_SPIN)
            sched_yield();
#if defined(__x86_64__)
        else
            __builtin_ia32_pause();
#endif
    }
}
