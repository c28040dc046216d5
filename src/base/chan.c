/* chan.c: the cross-thread FIFO (chan.h).
 *
 * A ring buffer of fixed-size items behind one mutex, with one condvar that poppers wait on.
 * Pushers are HTTP threads and must never block on the engine, so the ring grows instead of
 * applying back-pressure; back-pressure lives one level up (engine_submit's max_waiting).
 * The condvar uses CLOCK_MONOTONIC so a wall-clock jump cannot stretch a timed pop. */
#include "cinder/chan.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct chan {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t item_size;
    unsigned char *ring; /* cap * item_size bytes */
    size_t cap, head, len;
    bool closed;
};

struct chan *chan_create(size_t item_size)
{
    CND_ASSERT(item_size > 0);
    struct chan *ch = xcalloc(1, sizeof(*ch));
    pthread_mutex_init(&ch->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ch->cond, &ca);
    pthread_condattr_destroy(&ca);
    ch->item_size = item_size;
    ch->cap = 16;
    ch->ring = xmalloc(ch->cap * item_size);
    return ch;
}

void chan_destroy(struct chan *ch)
{
    if (!ch)
        return;
    pthread_mutex_destroy(&ch->lock);
    pthread_cond_destroy(&ch->cond);
    free(ch->ring);
    free(ch);
}

/* Double the ring, unrolling the wrapped part so head becomes 0. Under the lock. */
static void chan_grow(struct chan *ch)
{
    size_t new_cap = ch->cap * 2, sz = ch->item_size;
    unsigned char *r = xmalloc(new_cap * sz);
    size_t first = CND_MIN(ch->len, ch->cap - ch->head);
    memcpy(r, ch->ring + ch->head * sz, first * sz);
    memcpy(r + first * sz, ch->ring, (ch->len - first) * sz);
    free(ch->ring);
    ch->ring = r;
    ch->cap = new_cap;
    ch->head = 0;
}

int chan_push(struct chan *ch, const void *item)
{
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        return CND_ECANCELLED;
    }
    if (ch->len == ch->cap)
        chan_grow(ch);
    size_t tail = (ch->head + ch->len) % ch->cap;
    memcpy(ch->ring + tail * ch->item_size, item, ch->item_size);
    ch->len++;
    pthread_cond_signal(&ch->cond);
    pthread_mutex_unlock(&ch->lock);
    return 0;
}

int chan_pop(struct chan *ch, void *item, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&ch->lock);
    while (ch->len == 0 && !ch->closed && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&ch->cond, &ch->lock);
        } else if (pthread_cond_timedwait(&ch->cond, &ch->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int rc;
    if (ch->len > 0) {
        memcpy(item, ch->ring + ch->head * ch->item_size, ch->item_size);
        ch->head = (ch->head + 1) % ch->cap;
        ch->len--;
        rc = 1;
    } else {
        rc = ch->closed ? CND_ECANCELLED : 0;
    }
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

void chan_close(struct chan *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->closed = true;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->lock);
}

size_t chan_len(struct chan *ch)
{
    pthread_mutex_lock(&ch->lock);
    size_t n = ch->len;
    pthread_mutex_unlock(&ch->lock);
    return n;
}
