/* ctest-labels: unit */
/* test_kv_block_pool.c: block ids, ref counts, LRU order, the prefix-hash map and its
 * collision safety; free + used + cached == total checked after every operation. */
#include "cinder/kv_block_pool.h"
#include "cinder/status.h"
#include "test.h"

#include <stdlib.h>

#define BS 4

#define INV(pool)                                                                                  \
    do {                                                                                           \
        CHECK(kv_block_pool_check_invariants(pool));                                               \
        CHECK_EQ_INT(kv_block_pool_n_free(pool) + kv_block_pool_n_used(pool) +                     \
                         kv_block_pool_n_cached(pool),                                             \
                     kv_block_pool_n_total(pool));                                                 \
    } while (0)

static void test_alloc_free(void)
{
    struct kv_block_pool *pool = kv_block_pool_create(8, BS);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_free(pool), 8);
    int32_t ids[8];
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 5, ids), 0);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(kv_block_pool_refcount(pool, ids[i]), 1);
        for (int j = 0; j < i; j++)
            CHECK(ids[i] != ids[j]);
    }
    /* too many: nothing changes */
    int32_t more[8] = {-1, -1, -1, -1};
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 4, more), CND_ENOSPC);
    CHECK_EQ_INT(more[0], -1);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 5);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 3, ids + 5), 0);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_available(pool), 0);
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 1, more), CND_ENOSPC);
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 0, more), 0);
    /* shared block: two refs, two unrefs */
    kv_block_pool_ref(pool, ids[0]);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_refcount(pool, ids[0]), 2);
    kv_block_pool_unref(pool, ids[0]);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 8);
    for (int i = 0; i < 8; i++) {
        kv_block_pool_unref(pool, ids[i]);
        INV(pool);
    }
    CHECK_EQ_INT(kv_block_pool_n_free(pool), 8);
    kv_block_pool_destroy(pool);
}

static void test_prefix_hash_and_lru(void)
{
    struct kv_block_pool *pool = kv_block_pool_create(4, BS);
    int32_t t1[BS] = {1, 2, 3, 4}, t2[BS] = {5, 6, 7, 8}, t3[BS] = {9, 9, 9, 9};
    int32_t a[2];
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 2, a), 0);
    uint64_t h1 = kv_block_pool_hash(0, t1, BS), h2 = kv_block_pool_hash(h1, t2, BS);
    CHECK(h1 != h2);
    CHECK(kv_block_pool_hash(0, t1, BS) == h1); /* deterministic */
    CHECK(kv_block_pool_set_hash(pool, a[0], -1, h1, t1));
    CHECK(kv_block_pool_set_hash(pool, a[1], a[0], h2, t2));
    CHECK(!kv_block_pool_set_hash(pool, a[1], a[0], h2, t2)); /* already hashed */
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t1), a[0]);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, a[0], h2, t2), a[1]);
    /* collision safety: same hash but other tokens, or another parent, is no match */
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t3), -1);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, a[1], h2, t2), -1);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h2, t2), -1);
    /* a duplicate of a registered block is not registered */
    int32_t dup;
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 1, &dup), 0);
    CHECK(!kv_block_pool_set_hash(pool, dup, -1, h1, t1));
    CHECK(!kv_block_pool_is_hashed(pool, dup));
    kv_block_pool_unref(pool, dup); /* unhashed: back to the LRU head, free */
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_free(pool), 2);

    /* free both (tail first, as kv_manager does): they become cached, still found */
    kv_block_pool_unref(pool, a[1]);
    kv_block_pool_unref(pool, a[0]);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_cached(pool), 2);
    CHECK_EQ_INT(kv_block_pool_n_free(pool), 2);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t1), a[0]);
    /* a cache hit takes a ref: cached -> used */
    kv_block_pool_ref(pool, a[0]);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_cached(pool), 1);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 1);
    kv_block_pool_unref(pool, a[0]); /* a[0] is now the most recently freed */
    INV(pool);

    /* allocation takes free blocks before cached ones */
    int32_t b[2];
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 2, b), 0);
    INV(pool);
    CHECK(b[0] != a[0] && b[0] != a[1] && b[1] != a[0] && b[1] != a[1]);
    CHECK_EQ_INT(kv_block_pool_n_cached(pool), 2);
    /* then evicts the least recently freed cached block: a[1] first */
    int32_t c;
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 1, &c), 0);
    INV(pool);
    CHECK_EQ_INT(c, a[1]);
    CHECK(!kv_block_pool_is_hashed(pool, c));
    CHECK_EQ_INT(kv_block_pool_lookup(pool, a[0], h2, t2), -1);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t1), a[0]);
    /* a[0] gets evicted and reused: a child registered under its old life never matches */
    int32_t d;
    CHECK(kv_block_pool_set_hash(pool, c, a[0], h2, t2)); /* c registered as child of a[0] */
    CHECK_EQ_INT(kv_block_pool_lookup(pool, a[0], h2, t2), c);
    CHECK_EQ_INT(kv_block_pool_alloc(pool, 1, &d), 0);
    CHECK_EQ_INT(d, a[0]);
    INV(pool);
    CHECK(kv_block_pool_set_hash(pool, d, -1, h1, t1)); /* same content again, new generation */
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t1), d);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, d, h2, t2), -1); /* stale child */

    kv_block_pool_reset_cache(pool);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_lookup(pool, -1, h1, t1), -1);
    kv_block_pool_unref(pool, b[0]);
    kv_block_pool_unref(pool, b[1]);
    kv_block_pool_unref(pool, c);
    kv_block_pool_unref(pool, d);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_free(pool), 4);
    kv_block_pool_destroy(pool);
}

static void test_random_ops(void)
{
    enum { N = 32, MAXH = 64 };
    struct kv_block_pool *pool = kv_block_pool_create(N, BS);
    int32_t held[MAXH];
    int n_held = 0;
    srand(12345);
    int32_t toks[BS];
    for (int it = 0; it < 20000; it++) {
        int op = rand() % 5;
        if (op == 0 && n_held < MAXH - 4) {
            int k = rand() % 4 + 1;
            int32_t ids[4];
            int32_t avail = kv_block_pool_n_available(pool);
            int rc = kv_block_pool_alloc(pool, k, ids);
            CHECK_EQ_INT(rc, k <= avail ? 0 : CND_ENOSPC);
            if (rc == 0)
                for (int j = 0; j < k; j++)
                    held[n_held++] = ids[j];
        } else if (op == 1 && n_held > 0) {
            int j = rand() % n_held;
            kv_block_pool_unref(pool, held[j]);
            held[j] = held[--n_held];
        } else if (op == 2 && n_held > 0 && n_held < MAXH) {
            int j = rand() % n_held;
            kv_block_pool_ref(pool, held[j]);
            held[n_held++] = held[j];
        } else if (op == 3 && n_held > 0) {
            int j = rand() % n_held;
            for (int t = 0; t < BS; t++)
                toks[t] = rand() % 3;
            int32_t parent = rand() % 2 ? -1 : held[rand() % n_held];
            kv_block_pool_set_hash(pool, held[j], parent, kv_block_pool_hash(0, toks, BS), toks);
        } else if (op == 4) {
            for (int t = 0; t < BS; t++)
                toks[t] = rand() % 3;
            int32_t id = kv_block_pool_lookup(pool, -1, kv_block_pool_hash(0, toks, BS), toks);
            if (id >= 0 && n_held < MAXH) {
                kv_block_pool_ref(pool, id);
                held[n_held++] = id;
            }
        }
        if (!kv_block_pool_check_invariants(pool)) {
            CHECK(!"invariants broken");
            break;
        }
    }
    while (n_held > 0)
        kv_block_pool_unref(pool, held[--n_held]);
    INV(pool);
    CHECK_EQ_INT(kv_block_pool_n_used(pool), 0);
    kv_block_pool_destroy(pool);
}

int main(void)
{
    RUN(test_alloc_free);
    RUN(test_prefix_hash_and_lru);
    RUN(test_random_ops);
    return test_summary();
}
