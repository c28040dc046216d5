/* chan.h: a mutex+condvar FIFO of fixed-size items between threads (h2o's multithread queue,
 * Go's channel without the rendezvous). Unbounded; push never blocks. The engine inbox is one.
 * Thread-safe: every function may be called from any thread. */
#ifndef CINDER_CHAN_H
#define CINDER_CHAN_H

#include "cinder/common.h"

struct chan;

/* A channel of items of item_size bytes (copied in and out by value). */
struct chan *chan_create(size_t item_size);
/* Frees the channel and any items still queued (items are plain bytes: an item that owns
 * something must be drained by the owner first). chan_destroy(NULL) does nothing. */
void chan_destroy(struct chan *ch);
/* Append a copy of *item and wake one waiter. Returns 0, or CND_ECANCELLED once closed. */
int chan_push(struct chan *ch, const void *item);
/* Take the oldest item into *item. timeout_ms < 0 waits for ever, 0 does not wait. Returns 1
 * when an item was taken, 0 on timeout, CND_ECANCELLED when closed and empty. */
int chan_pop(struct chan *ch, void *item, int timeout_ms);
/* No more pushes; poppers drain what is left, then get CND_ECANCELLED. Idempotent. */
void chan_close(struct chan *ch);
size_t chan_len(struct chan *ch);

#endif
