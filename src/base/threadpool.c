/* threadpool.c: fork-join workers for the CPU backend. A step runs dozens of ops, each split
 * across threads, so hand-off latency matters more than fairness: workers spin briefly on the
 * job word before sleeping on a condition variable, the caller works as thread 0, and chunks
 * come from a shared counter.
 *
 * The job word packs (generation << 32 | CLOSED | workers inside). A worker enters the current
 * job with a CAS that only succeeds while the job is open, runs chunks, and leaves. The caller,
 * once the counter is exhausted, waits for the workers inside to leave and closes the job with
 * a CAS; a worker that wakes up later finds it closed and skips it. So the caller never waits
 * for a worker that is not running, and the job fields are stable while anyone is inside. */
#include "cinder/threadpool.h"
#include "cinder/xalloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* pause iterations (~40-140 cycles each) before a worker sleeps, resp. the caller yields */
#define THREADPOOL_SPIN 20000
#define JOB_CLOSED      0x80000000ull
#define JOB_INSIDE      0x7FFFFFFFull

struct threadpool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic uint64_t job;  /* generation << 32 | CLOSED | n inside */
    atomic_int n_sleeping; /* workers blocked (or about to block) on the condition variable */
    atomic_bool stop;
    /* the current job (written before the job word opens it) */
    threadpool_chunk_fn fn;
    void *ctx;
    int64_t n_chunks;
    int n_allowed;
    _Atomic int64_t next;
};

struct worker_arg {
    struct threadpool *tp;
    int index;
};

static inline void relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

static void run_chunks_as(struct threadpool *tp, int index)
{
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&tp->next, 1, memory_order_relaxed);
        if (c >= tp->n_chunks)
            break;
        tp->fn(tp->ctx, c, index);
    }
}

static void *threadpool_worker(void *p)
{
    struct worker_arg *arg = p;
    struct threadpool *tp = arg->tp;
    const int index = arg->index;
    free(arg);
    uint32_t seen = 0;
    int spins = 0;
    for (;;) {
        if (atomic_load_explicit(&tp->stop, memory_order_relaxed))
            return NULL;
        uint64_t s = atomic_load_explicit(&tp->job, memory_order_acquire);
        const uint32_t gen = (uint32_t)(s >> 32);
        if (gen != seen && !(s & JOB_CLOSED)) {
            if (!atomic_compare_exchange_weak_explicit(&tp->job, &s, s + 1, memory_order_acq_rel,
                                                       memory_order_acquire))
                continue; /* raced with another worker or with the close: look again */
            if (index < tp->n_allowed)
                run_chunks_as(tp, index);
            atomic_fetch_sub_explicit(&tp->job, 1, memory_order_release);
            seen = gen;
            spins = 0;
            continue;
        }
        if (gen != seen) /* closed before we got there */
            seen = gen;
        if (++spins < THREADPOOL_SPIN) {
            relax();
            continue;
        }
        pthread_mutex_lock(&tp->lock);
        atomic_fetch_add(&tp->n_sleeping, 1);
        while ((uint32_t)(atomic_load(&tp->job) >> 32) == seen && !atomic_load(&tp->stop))
            pthread_cond_wait(&tp->wake, &tp->lock);
        atomic_fetch_sub(&tp->n_sleeping, 1);
        pthread_mutex_unlock(&tp->lock);
        spins = 0;
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
    atomic_init(&tp->job, JOB_CLOSED);
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

void threadpool_run_chunks(struct threadpool *tp, int n, int64_t n_chunks, threadpool_chunk_fn fn,
                           void *ctx)
{
    if (n > tp->n_threads)
        n = tp->n_threads;
    if (n_chunks < n)
        n = (int)n_chunks;
    if (n <= 1) {
        for (int64_t c = 0; c < n_chunks; c++)
            fn(ctx, c, 0);
        return;
    }
    /* the previous job is closed and empty: nobody reads these now */
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_chunks = n_chunks;
    tp->n_allowed = n;
    atomic_store_explicit(&tp->next, 0, memory_order_relaxed);
    const uint64_t gen = (atomic_load(&tp->job) >> 32) + 1;
    /* open (seq_cst: a Dekker pair with the worker's n_sleeping increment, so either the worker
     * sees the new generation before it waits, or we see it sleeping and wake it) */
    atomic_store(&tp->job, (gen & 0xFFFFFFFFull) << 32);
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->lock);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->lock);
    }
    run_chunks_as(tp, 0);
    /* every chunk is taken; wait for the takers to finish, then close */
    int spins = 0;
    for (;;) {
        uint64_t s = atomic_load_explicit(&tp->job, memory_order_acquire);
        if ((s & JOB_INSIDE) == 0 &&
            atomic_compare_exchange_weak_explicit(&tp->job, &s, s | JOB_CLOSED,
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
        if (++spins > THREADPOOL_SPIN)
            sched_yield();
        else
            relax();
    }
}

struct run_adapter {
    threadpool_task_fn fn;
    void *ctx;
    int n;
};

static void run_adapter_chunk(void *p, int64_t chunk, int i_thread)
{
    const struct run_adapter *a = p;
    CND_UNUSED(i_thread);
    a->fn(a->ctx, (int)chunk, a->n);
}

void threadpool_run(struct threadpool *tp, int n, threadpool_task_fn fn, void *ctx)
{
    if (n > tp->n_threads)
        n = tp->n_threads;
    if (n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    struct run_adapter a = {fn, ctx, n};
    threadpool_run_chunks(tp, n, n, run_adapter_chunk, &a);
}
