/* ctest-labels: unit */
/* test_kv_manager.c: block tables, all-or-nothing allocation, prefix hits at admission (never the
 * whole prompt), LRU eviction of cached prefixes, fork and copy-on-write, and a randomized run of
 * admissions, steps, finishes, cancels and preemptions with no leaked block. The pool invariant
 * free + used + cached == total is checked after every operation. */
#include "cinder/kv_block_pool.h"
#include "cinder/kv_manager.h"
#include "cinder/request.h"
#include "cinder/status.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define BS 4

#define INV(kvm)                                                                                   \
    do {                                                                                           \
        struct kv_block_pool *p_ = kv_manager_pool(kvm);                                           \
        CHECK(kv_manager_check_invariants(kvm));                                                   \
        CHECK_EQ_INT(kv_block_pool_n_free(p_) + kv_block_pool_n_used(p_) +                         \
                         kv_block_pool_n_cached(p_),                                               \
                     kv_block_pool_n_total(p_));                                                   \
    } while (0)

static struct kv_manager *mk(int32_t n_blocks, bool caching)
{
    struct kv_manager_params p = {
        .n_blocks = n_blocks, .block_size = BS, .enable_prefix_caching = caching};
    return kv_manager_create(&p, NULL);
}

static struct request *mkreq(const int32_t *toks, int32_t n)
{
    return request_create("t", toks, n, NULL);
}

/* What the scheduler does at admission: prefix lookup + allocation for the rest. */
static int admit(struct kv_manager *kvm, struct request *req)
{
    const int32_t *hit;
    int32_t n_hit = kv_manager_get_computed_blocks(kvm, req, &hit);
    int32_t n_new = req->n_tokens - n_hit * BS;
    int rc = kv_manager_allocate_slots_prefix(kvm, req, n_new, hit, n_hit);
    if (rc == 0)
        req->n_cached = n_hit * BS;
    return rc;
}

/* The step ran: everything scheduled is computed. */
static void computed(struct kv_manager *kvm, struct request *req, int32_t n_new)
{
    req->n_computed += n_new;
    kv_manager_cache_blocks(kvm, req);
}

static void test_allocate(void)
{
    struct kv_manager *kvm = mk(6, true);
    int32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct request *a = mkreq(toks, 10);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, a, 10), 0);
    INV(kvm);
    CHECK_EQ_INT(a->n_blocks, 3);
    computed(kvm, a, 10);
    INV(kvm);
    CHECK_EQ_INT(a->n_blocks_hashed, 2);
    /* decode steps: a block only every BS tokens */
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, a, 1), 0);
    CHECK_EQ_INT(a->n_blocks, 3);
    computed(kvm, a, 1);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, a, 1), 0);
    CHECK_EQ_INT(a->n_blocks, 3);
    computed(kvm, a, 1);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, a, 1), 0);
    CHECK_EQ_INT(a->n_blocks, 4);
    INV(kvm);
    /* not enough: no side effects */
    struct request *b = mkreq(toks, 10);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, b, 10), CND_ENOSPC);
    CHECK_EQ_INT(b->n_blocks, 0);
    CHECK_EQ_INT(kv_block_pool_n_used(kv_manager_pool(kvm)), 4);
    INV(kvm);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, b, 8), 0);
    INV(kvm);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, b, 9), CND_ENOSPC);
    CHECK_EQ_INT(b->n_blocks, 2);
    kv_manager_free_request(kvm, a);
    INV(kvm);
    kv_manager_free_request(kvm, a); /* idempotent */
    kv_manager_free_request(kvm, b);
    INV(kvm);
    CHECK_EQ_INT(kv_block_pool_n_used(kv_manager_pool(kvm)), 0);
    request_unref(a);
    request_unref(b);
    kv_manager_destroy(kvm);
}

static void test_prefix_hits(void)
{
    struct kv_manager *kvm = mk(16, true);
    struct kv_block_pool *pool = kv_manager_pool(kvm);
    int32_t p1[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct request *a = mkreq(p1, 10);
    CHECK_EQ_INT(admit(kvm, a), 0);
    CHECK_EQ_INT(a->n_cached, 0);
    computed(kvm, a, 10);
    INV(kvm);
    /* same prompt while a still runs: the two full blocks are shared */
    struct request *b = mkreq(p1, 10);
    CHECK_EQ_INT(admit(kvm, b), 0);
    INV(kvm);
    CHECK_EQ_INT(b->n_cached, 8);
    CHECK_EQ_INT(b->n_computed, 8);
    CHECK_EQ_INT(b->block_table[0], a->block_table[0]);
    CHECK_EQ_INT(b->block_table[1], a->block_table[1]);
    CHECK(b->block_table[2] != a->block_table[2]);
    CHECK_EQ_INT(kv_block_pool_refcount(pool, a->block_table[0]), 2);
    computed(kvm, b, 2);
    INV(kvm);
    kv_manager_free_request(kvm, a);
    kv_manager_free_request(kvm, b);
    INV(kvm);
    CHECK_EQ_INT(kv_block_pool_n_cached(pool), 2);

    /* after both finished: still cached */
    struct request *c = mkreq(p1, 10);
    CHECK_EQ_INT(admit(kvm, c), 0);
    CHECK_EQ_INT(c->n_cached, 8);
    INV(kvm);
    kv_manager_free_request(kvm, c);

    /* exactly two blocks long: the last token must be computed, so only one block hits */
    struct request *d = mkreq(p1, 8);
    CHECK_EQ_INT(admit(kvm, d), 0);
    CHECK_EQ_INT(d->n_cached, 4);
    CHECK_EQ_INT(d->n_computed, 4);
    INV(kvm);
    kv_manager_free_request(kvm, d);

    /* diverging in the second block: one block */
    int32_t p2[10] = {1, 2, 3, 4, 5, 6, 7, 99, 9, 10};
    struct request *e = mkreq(p2, 10);
    CHECK_EQ_INT(admit(kvm, e), 0);
    CHECK_EQ_INT(e->n_cached, 4);
    kv_manager_free_request(kvm, e);
    /* diverging in the first: nothing */
    int32_t p3[10] = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct request *f = mkreq(p3, 10);
    CHECK_EQ_INT(admit(kvm, f), 0);
    CHECK_EQ_INT(f->n_cached, 0);
    kv_manager_free_request(kvm, f);
    INV(kvm);

    /* generated tokens are cached too: prompt + output as the next turn's prompt */
    struct request *g = mkreq(p1, 6);
    CHECK_EQ_INT(admit(kvm, g), 0);
    computed(kvm, g, g->n_tokens - g->n_computed);
    for (int i = 0; i < 6; i++) { /* decode 6 tokens */
        g->tokens[g->n_tokens++] = 50 + i;
        CHECK_EQ_INT(kv_manager_allocate_slots(kvm, g, 1), 0);
        computed(kvm, g, 1);
        INV(kvm);
    }
    int32_t turn2[13] = {1, 2, 3, 4, 5, 6, 50, 51, 52, 53, 54, 55, 77};
    struct request *h = mkreq(turn2, 13);
    CHECK_EQ_INT(admit(kvm, h), 0);
    CHECK_EQ_INT(h->n_cached, 12); /* g computed all 12 tokens: 3 full blocks */
    kv_manager_free_request(kvm, g);
    kv_manager_free_request(kvm, h);
    INV(kvm);

    /* prefix caching off: never a hit */
    struct kv_manager *off = mk(8, false);
    struct request *x = mkreq(p1, 10);
    CHECK_EQ_INT(admit(off, x), 0);
    computed(off, x, 10);
    kv_manager_free_request(off, x);
    struct request *y = mkreq(p1, 10);
    CHECK_EQ_INT(admit(off, y), 0);
    CHECK_EQ_INT(y->n_cached, 0);
    CHECK_EQ_INT(kv_block_pool_n_cached(kv_manager_pool(off)), 0);
    kv_manager_free_request(off, y);
    INV(off);
    kv_manager_destroy(off);
    request_unref(x), request_unref(y);
    request_unref(a), request_unref(b), request_unref(c), request_unref(d);
    request_unref(e), request_unref(f), request_unref(g), request_unref(h);
    kv_manager_destroy(kvm);
}

static void test_admission_counts_cached_blocks(void)
{
    /* the pool: 4 blocks; a cached 2-block prefix. A request reusing it needs 1 more block;
     * the two cached blocks must not be counted as allocatable for that block. */
    struct kv_manager *kvm = mk(4, true);
    int32_t p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct request *a = mkreq(p, 8);
    CHECK_EQ_INT(admit(kvm, a), 0);
    computed(kvm, a, 8);
    kv_manager_free_request(kvm, a);
    CHECK_EQ_INT(kv_block_pool_n_cached(kv_manager_pool(kvm)), 2);
    struct request *hog = mkreq(p, 8);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, hog, 8), 0); /* takes the 2 free blocks */
    INV(kvm);
    CHECK_EQ_INT(kv_block_pool_n_cached(kv_manager_pool(kvm)), 2);
    struct request *b = mkreq(p, 12);
    CHECK_EQ_INT(admit(kvm, b), CND_ENOSPC); /* 2 cached hit + 1 new, only the 2 cached left */
    CHECK_EQ_INT(b->n_blocks, 0);
    CHECK_EQ_INT(b->n_computed, 0);
    CHECK_EQ_INT(kv_block_pool_n_cached(kv_manager_pool(kvm)), 2);
    INV(kvm);
    kv_manager_free_request(kvm, hog);
    CHECK_EQ_INT(admit(kvm, b), 0);
    CHECK_EQ_INT(b->n_cached, 8);
    INV(kvm);
    kv_manager_free_request(kvm, b);
    INV(kvm);
    request_unref(a), request_unref(b), request_unref(hog);
    kv_manager_destroy(kvm);
}

static void test_lru_eviction(void)
{
    struct kv_manager *kvm = mk(4, true);
    int32_t p1[9] = {1, 1, 1, 1, 2, 2, 2, 2, 3};
    int32_t p2[9] = {5, 5, 5, 5, 6, 6, 6, 6, 7};
    struct request *a = mkreq(p1, 9);
    CHECK_EQ_INT(admit(kvm, a), 0);
    computed(kvm, a, 9);
    kv_manager_free_request(kvm, a); /* 2 cached (p1), 2 free */
    INV(kvm);
    struct request *b = mkreq(p2, 9);
    CHECK_EQ_INT(admit(kvm, b), 0); /* 3 blocks: 2 free + evicts p1's 2nd block (freed first) */
    INV(kvm);
    computed(kvm, b, 9);
    struct request *c = mkreq(p1, 9);
    const int32_t *hit;
    CHECK_EQ_INT(kv_manager_get_computed_blocks(kvm, c, &hit), 1); /* head survived */
    kv_manager_free_request(kvm, b);
    INV(kvm);
    CHECK_EQ_INT(admit(kvm, c), 0);
    CHECK_EQ_INT(c->n_cached, 4);
    kv_manager_free_request(kvm, c);
    INV(kvm);
    request_unref(a), request_unref(b), request_unref(c);
    kv_manager_destroy(kvm);
}

static void test_fork_cow(void)
{
    struct kv_manager *kvm = mk(8, true);
    struct kv_block_pool *pool = kv_manager_pool(kvm);
    int32_t p[6] = {1, 2, 3, 4, 5, 6};
    struct request *a = mkreq(p, 6);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, a, 6), 0);
    computed(kvm, a, 6);
    struct request *b = mkreq(p, 6);
    kv_manager_fork(kvm, a, b);
    INV(kvm);
    CHECK_EQ_INT(b->n_blocks, 2);
    CHECK_EQ_INT(b->n_computed, 6);
    CHECK_EQ_INT(kv_block_pool_refcount(pool, a->block_table[0]), 2);
    CHECK_EQ_INT(kv_block_pool_refcount(pool, a->block_table[1]), 2);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 2);
    /* both append a different token at position 6, in the shared partial block 1 */
    int32_t src = -1, dst = -1;
    int32_t shared = a->block_table[1];
    CHECK_EQ_INT(kv_manager_cow_last_block(kvm, b, &src, &dst), 1);
    INV(kvm);
    CHECK_EQ_INT(src, shared);
    CHECK(dst != shared);
    CHECK_EQ_INT(b->block_table[1], dst);
    CHECK_EQ_INT(b->block_table[0], a->block_table[0]); /* the full block stays shared */
    CHECK_EQ_INT(kv_block_pool_refcount(pool, shared), 1);
    CHECK_EQ_INT(kv_manager_cow_last_block(kvm, a, &src, &dst), 0); /* a owns it alone now */
    CHECK_EQ_INT(kv_manager_cow_last_block(kvm, b, &src, &dst), 0);
    /* no block left for a copy: CND_ENOSPC, nothing changed */
    struct request *c = mkreq(p, 6);
    kv_manager_fork(kvm, a, c);
    struct request *hog = mkreq(p, 6);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, hog, 4 * BS), 0);
    CHECK_EQ_INT(kv_block_pool_n_available(pool), 1);
    CHECK_EQ_INT(kv_manager_allocate_slots(kvm, hog, 5 * BS), 0);
    CHECK_EQ_INT(kv_manager_cow_last_block(kvm, c, &src, &dst), CND_ENOSPC);
    CHECK_EQ_INT(c->block_table[1], a->block_table[1]);
    INV(kvm);
    kv_manager_free_request(kvm, hog);
    kv_manager_free_request(kvm, c);
    kv_manager_free_request(kvm, a);
    kv_manager_free_request(kvm, b);
    INV(kvm);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 0);
    request_unref(a), request_unref(b), request_unref(c), request_unref(hog);
    kv_manager_destroy(kvm);
}

/* A randomized life of many requests: admissions with prefix hits, chunked prefill, decode,
 * finishes, cancels (at any point) and preemptions (free + recompute later). */
static void test_random_lifecycle(void)
{
    enum { NREQ = 24 };
    struct kv_manager *kvm = mk(20, true);
    struct kv_block_pool *pool = kv_manager_pool(kvm);
    struct request *reqs[NREQ] = {0};
    int state[NREQ] = {0}; /* 0 none, 1 admitted */
    srand(777);
    bool ok = true;
    for (int it = 0; it < 20000 && ok; it++) {
        int i = rand() % NREQ;
        struct request *r = reqs[i];
        int op = rand() % 4;
        if (!r) {
            int32_t toks[40];
            int32_t n = 1 + rand() % 30;
            int family = rand() % 3;
            for (int32_t t = 0; t < n; t++)
                toks[t] = t < 12 ? family * 100 + t : rand() % 5;
            reqs[i] = mkreq(toks, n);
            state[i] = 0;
        } else if (state[i] == 0) {
            if (op == 0) { /* cancelled while waiting */
                request_unref(r);
                reqs[i] = NULL;
            } else if (admit(kvm, r) == 0) {
                state[i] = 1;
                int32_t chunk = CND_MIN(r->n_tokens - r->n_computed, 1 + rand() % 8);
                kv_manager_free_request(kvm, r); /* redo with a chunk: exercise both paths */
                const int32_t *hit;
                int32_t n_hit = kv_manager_get_computed_blocks(kvm, r, &hit);
                chunk = CND_MIN(r->n_tokens - n_hit * BS, chunk);
                if (kv_manager_allocate_slots_prefix(kvm, r, chunk, hit, n_hit) == 0)
                    computed(kvm, r, chunk);
                else
                    state[i] = 0;
            }
        } else {
            if (op == 0 || r->n_tokens > 38) { /* finish or cancel */
                kv_manager_free_request(kvm, r);
                request_unref(r);
                reqs[i] = NULL;
            } else if (op == 1) { /* preempt: back to waiting, recomputed later */
                kv_manager_free_request(kvm, r);
                state[i] = 0;
            } else { /* one step: the rest of the prompt in a chunk, or a decode */
                int32_t left = r->n_tokens - r->n_computed;
                int32_t n_new = left > 0 ? CND_MIN(left, 1 + rand() % 8) : 1;
                if (left == 0)
                    r->tokens[r->n_tokens++] = rand() % 5; /* the sampled token */
                if (r->n_tokens > r->cap_tokens - 1) {
                    r->cap_tokens *= 2;
                    r->tokens = realloc(r->tokens, sizeof(int32_t) * (size_t)r->cap_tokens);
                }
                if (kv_manager_allocate_slots(kvm, r, n_new) == 0)
                    computed(kvm, r, n_new);
            }
        }
        ok = kv_manager_check_invariants(kvm);
        for (int k = 0; k < NREQ && ok; k++)
            if (reqs[k] && state[k] == 1)
                ok = reqs[k]->n_blocks >= kv_manager_blocks_for(kvm, reqs[k]->n_computed);
    }
    CHECK(ok);
    for (int i = 0; i < NREQ; i++) {
        if (reqs[i]) {
            kv_manager_free_request(kvm, reqs[i]);
            request_unref(reqs[i]);
        }
    }
    INV(kvm);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 0);
    CHECK_EQ_INT(kv_block_pool_n_free(pool) + kv_block_pool_n_cached(pool), 20);
    kv_manager_destroy(kvm);
}

int main(void)
{
    RUN(test_allocate);
    RUN(test_prefix_hits);
    RUN(test_admission_counts_cached_blocks);
    RUN(test_lru_eviction);
    RUN(test_fork_cow);
    RUN(test_random_lifecycle);
    return test_summary();
}
