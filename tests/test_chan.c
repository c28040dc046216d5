/* ctest-labels: unit */
/* test_chan.c: the cross-thread FIFO: order across ring growth and wrap-around, timeouts, close
 * semantics, and many producers against one consumer (the engine inbox's shape). */
#include "cinder/chan.h"
#include "cinder/clock.h"
#include "cinder/status.h"
#include "test.h"

#include <pthread.h>

struct item {
    int32_t producer;
    int32_t seq;
};

static void test_order_and_growth(void)
{
    struct chan *ch = chan_create(sizeof(struct item));
    struct item it;
    CHECK_EQ_INT(chan_pop(ch, &it, 0), 0);
    int32_t next_in = 0, next_out = 0;
    /* interleave so the ring wraps before it grows */
    for (int round = 0; round < 50; round++) {
        for (int k = 0; k < round % 23 + 1; k++) {
            it = (struct item){0, next_in++};
            CHECK_EQ_INT(chan_push(ch, &it), 0);
        }
        for (int k = 0; k < round % 7 + 1 && chan_len(ch) > 0; k++) {
            CHECK_EQ_INT(chan_pop(ch, &it, 0), 1);
            CHECK_EQ_INT(it.seq, next_out++);
        }
    }
    while (chan_pop(ch, &it, 0) == 1)
        CHECK_EQ_INT(it.seq, next_out++);
    CHECK_EQ_INT(next_out, next_in);
    chan_destroy(ch);
    chan_destroy(NULL);
}

static void test_timeout_and_close(void)
{
    struct chan *ch = chan_create(sizeof(int));
    int v = 7;
    int64_t t0 = now_us();
    CHECK_EQ_INT(chan_pop(ch, &v, 50), 0);
    int64_t waited = now_us() - t0;
    CHECK(waited >= 45000 && waited < 2000000);
    CHECK_EQ_INT(chan_push(ch, &v), 0);
    chan_close(ch);
    chan_close(ch); /* idempotent */
    CHECK_EQ_INT(chan_push(ch, &v), CND_ECANCELLED);
    int got = 0;
    CHECK_EQ_INT(chan_pop(ch, &got, -1), 1); /* what was queued is still drained */
    CHECK_EQ_INT(got, 7);
    CHECK_EQ_INT(chan_pop(ch, &got, -1), CND_ECANCELLED);
    CHECK_EQ_INT(chan_pop(ch, &got, 10), CND_ECANCELLED);
    chan_destroy(ch);
}

enum { N_PRODUCERS = 4, N_PER = 5000 };

struct producer_arg {
    struct chan *ch;
    int32_t id;
};

static void *producer(void *arg)
{
    struct producer_arg *a = arg;
    for (int32_t i = 0; i < N_PER; i++) {
        struct item it = {a->id, i};
        chan_push(a->ch, &it);
    }
    return NULL;
}

static void test_many_producers(void)
{
    struct chan *ch = chan_create(sizeof(struct item));
    pthread_t th[N_PRODUCERS];
    struct producer_arg args[N_PRODUCERS];
    for (int i = 0; i < N_PRODUCERS; i++) {
        args[i] = (struct producer_arg){ch, i};
        pthread_create(&th[i], NULL, producer, &args[i]);
    }
    int32_t next[N_PRODUCERS] = {0};
    int n = 0;
    bool in_order = true;
    while (n < N_PRODUCERS * N_PER) {
        struct item it;
        int rc = chan_pop(ch, &it, 2000);
        if (rc != 1)
            break;
        in_order &= it.seq == next[it.producer];
        next[it.producer] = it.seq + 1;
        n++;
    }
    for (int i = 0; i < N_PRODUCERS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(n, N_PRODUCERS * N_PER);
    CHECK(in_order); /* each producer's items in its own order */
    chan_destroy(ch);
}

static void *closer(void *arg)
{
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    chan_close(arg);
    return NULL;
}

static void test_close_wakes_waiter(void)
{
    struct chan *ch = chan_create(sizeof(int));
    pthread_t th;
    pthread_create(&th, NULL, closer, ch);
    int v;
    CHECK_EQ_INT(chan_pop(ch, &v, -1), CND_ECANCELLED);
    pthread_join(th, NULL);
    chan_destroy(ch);
}

int main(void)
{
    RUN(test_order_and_growth);
    RUN(test_timeout_and_close);
    RUN(test_many_producers);
    RUN(test_close_wakes_waiter);
    return test_summary();
}
