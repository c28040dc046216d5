/* kv_block_pool.c: block ids, ref counts, the LRU free list and the prefix-hash map.
 *
 * This is the bottom of the KV cache stack (vLLM's BlockPool): it knows nothing of requests or
 * devices, only that block b is held by ref[b] owners and may carry the hash of the tokens whose
 * K/V it holds. Freed blocks are not wiped: a block with a hash stays findable while it waits in
 * the LRU, so a later request with the same prefix (a system prompt, the earlier turns of a chat)
 * gets it back for free. Allocation takes from the LRU head; hashed blocks are appended at the
 * tail when freed and unhashed ones pushed at the head, so plain garbage is reused before any
 * cached prefix is evicted, and among cached prefixes the least recently freed goes first.
 *
 * Hash map: a power-of-two bucket array of block ids chained through kv_block.hash_next, sized
 * to twice the block count, so lookups are O(1) and nothing is allocated after create.
 *
 * Collision safety: a 64-bit hash alone could (with probability ~2^-64 per pair) alias two
 * prefixes, which would silently serve wrong K/V. So a match also compares the block's tokens
 * and its parent: the block id it was computed after, plus that block's allocation generation
 * (gen is bumped whenever a block is handed out again). Walking a prompt block by block, the
 * parent of block i is the block just matched for i-1, so by induction a hit means the whole
 * prefix is token-for-token identical. */
#include "cinder/kv_block_pool.h"
#include "cinder/list.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

struct kv_block {
    int32_t ref;
    uint32_t gen; /* bumped at each allocation */
    bool hashed;
    bool in_lru;
    int32_t parent;      /* block this one's K/V were computed after (-1: first block) */
    uint32_t parent_gen; /* parent's gen at registration */
    uint64_t hash;
    int32_t hash_next; /* next block id in the same bucket, -1 */
    struct list_node lru;
};

struct kv_block_pool {
    int32_t n_blocks, block_size;
    struct kv_block *blocks;
    int32_t *tokens;      /* [n_blocks * block_size], valid for hashed blocks */
    struct list_node lru; /* ref-0 blocks; head = next to allocate */
    int32_t *buckets;
    uint64_t bucket_mask;
    int32_t n_free, n_used, n_cached;
};

struct kv_block_pool *kv_block_pool_create(int32_t n_blocks, int32_t block_size)
{
    CND_ASSERT(n_blocks > 0 && block_size > 0);
    struct kv_block_pool *pool = xcalloc(1, sizeof(*pool));
    pool->n_blocks = n_blocks;
    pool->block_size = block_size;
    pool->blocks = xcalloc((size_t)n_blocks, sizeof(*pool->blocks));
    pool->tokens = xmalloc(sizeof(int32_t) * (size_t)n_blocks * (size_t)block_size);
    list_init(&pool->lru);
    for (int32_t i = 0; i < n_blocks; i++) {
        struct kv_block *b = &pool->blocks[i];
        b->parent = -1;
        b->hash_next = -1;
        b->in_lru = true;
        list_push_back(&pool->lru, &b->lru);
    }
    uint64_t n_buckets = 16;
    while (n_buckets < (uint64_t)n_blocks * 2)
        n_buckets *= 2;
    pool->buckets = xmalloc(sizeof(int32_t) * n_buckets);
    for (uint64_t i = 0; i < n_buckets; i++)
        pool->buckets[i] = -1;
    pool->bucket_mask = n_buckets - 1;
    pool->n_free = n_blocks;
    return pool;
}

void kv_block_pool_destroy(struct kv_block_pool *pool)
{
    if (!pool)
        return;
    free(pool->blocks);
    free(pool->tokens);
    free(pool->buckets);
    free(pool);
}

int32_t kv_block_pool_n_total(const struct kv_block_pool *pool)
{
    return pool->n_blocks;
}

int32_t kv_block_pool_n_free(const struct kv_block_pool *pool)
{
    return pool->n_free;
}

int32_t kv_block_pool_n_used(const struct kv_block_pool *pool)
{
    return pool->n_used;
}

int32_t kv_block_pool_n_cached(const struct kv_block_pool *pool)
{
    return pool->n_cached;
}

int32_t kv_block_pool_n_available(const struct kv_block_pool *pool)
{
    return pool->n_free + pool->n_cached;
}

int32_t kv_block_pool_block_size(const struct kv_block_pool *pool)
{
    return pool->block_size;
}

static struct kv_block *pool_block(const struct kv_block_pool *pool, int32_t id)
{
    CND_ASSERT(id >= 0 && id < pool->n_blocks);
    return &pool->blocks[id];
}

/* Remove id from its bucket chain and forget the hash. */
static void pool_unhash(struct kv_block_pool *pool, int32_t id)
{
    struct kv_block *b = &pool->blocks[id];
    int32_t *link = &pool->buckets[b->hash & pool->bucket_mask];
    while (*link != id) {
        CND_ASSERT(*link >= 0);
        link = &pool->blocks[*link].hash_next;
    }
    *link = b->hash_next;
    b->hash_next = -1;
    b->hashed = false;
    b->parent = -1;
}

int kv_block_pool_alloc(struct kv_block_pool *pool, int32_t n, int32_t *ids)
{
    CND_ASSERT(n >= 0);
    if (n > pool->n_free + pool->n_cached)
        return CND_ENOSPC;
    for (int32_t i = 0; i < n; i++) {
        struct list_node *node = pool->lru.next;
        CND_ASSERT(node != &pool->lru);
        struct kv_block *b = list_entry(node, struct kv_block, lru);
        int32_t id = (int32_t)(b - pool->blocks);
        list_remove(node);
        b->in_lru = false;
        if (b->hashed) {
            pool_unhash(pool, id); /* evict the least recently freed prefix */
            pool->n_cached--;
        } else {
            pool->n_free--;
        }
        b->ref = 1;
        b->gen++;
        pool->n_used++;
        ids[i] = id;
    }
    return 0;
}

void kv_block_pool_ref(struct kv_block_pool *pool, int32_t id)
{
    struct kv_block *b = pool_block(pool, id);
    if (b->ref == 0) {
        CND_ASSERT(b->in_lru);
        list_remove(&b->lru);
        b->in_lru = false;
        if (b->hashed)
            pool->n_cached--;
        else
            pool->n_free--;
        pool->n_used++;
    }
    b->ref++;
}

void kv_block_pool_unref(struct kv_block_pool *pool, int32_t id)
{
    struct kv_block *b = pool_block(pool, id);
    CND_ASSERT(b->ref > 0);
    if (--b->ref > 0)
        return;
    pool->n_used--;
    b->in_lru = true;
    if (b->hashed) {
        list_push_back(&pool->lru, &b->lru);
        pool->n_cached++;
    } else {
        list_push_front(&pool->lru, &b->lru);
        pool->n_free++;
    }
}

int32_t kv_block_pool_refcount(const struct kv_block_pool *pool, int32_t id)
{
    return pool_block(pool, id)->ref;
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t kv_block_pool_hash(uint64_t parent_hash, const int32_t *tokens, int32_t n)
{
    uint64_t h = mix64(parent_hash ^ 0x9e3779b97f4a7c15ULL) ^ (uint64_t)(uint32_t)n;
    for (int32_t i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)tokens[i];
        h *= 0x100000001b3ULL; /* FNV-1a over 32-bit words */
    }
    h = mix64(h);
    return h ? h : 1; /* 0 is the chain seed */
}

int32_t kv_block_pool_lookup(const struct kv_block_pool *pool, int32_t parent_id, uint64_t hash,
                             const int32_t *tokens)
{
    uint32_t parent_gen = parent_id >= 0 ? pool_block(pool, parent_id)->gen : 0;
    size_t bs = (size_t)pool->block_size;
    for (int32_t id = pool->buckets[hash & pool->bucket_mask]; id >= 0;
         id = pool->blocks[id].hash_next) {
        const struct kv_block *b = &pool->blocks[id];
        if (b->hash != hash || b->parent != parent_id)
            continue;
        if (parent_id >= 0 && b->parent_gen != parent_gen)
            continue;
        if (memcmp(pool->tokens + (size_t)id * bs, tokens, bs * sizeof(int32_t)) != 0)
            continue;
        return id;
    }
    return -1;
}

bool kv_block_pool_set_hash(struct kv_block_pool *pool, int32_t id, int32_t parent_id,
                            uint64_t hash, const int32_t *tokens)
{
    struct kv_block *b = pool_block(pool, id);
    CND_ASSERT(b->ref > 0);
    if (b->hashed || kv_block_pool_lookup(pool, parent_id, hash, tokens) >= 0)
        return false;
    size_t bs = (size_t)pool->block_size;
    memcpy(pool->tokens + (size_t)id * bs, tokens, bs * sizeof(int32_t));
    b->hashed = true;
    b->hash = hash;
    b->parent = parent_id;
    b->parent_gen = parent_id >= 0 ? pool_block(pool, parent_id)->gen : 0;
    int32_t *head = &pool->buckets[hash & pool->bucket_mask];
    b->hash_next = *head;
    *head = id;
    return true;
}

bool kv_block_pool_is_hashed(const struct kv_block_pool *pool, int32_t id)
{
    return pool_block(pool, id)->hashed;
}

void kv_block_pool_reset_cache(struct kv_block_pool *pool)
{
    for (int32_t id = 0; id < pool->n_blocks; id++) {
        struct kv_block *b = &pool->blocks[id];
        if (!b->hashed)
            continue;
        pool_unhash(pool, id);
        if (b->ref == 0) {
            pool->n_cached--;
            pool->n_free++;
        }
    }
}

bool kv_block_pool_check_invariants(const struct kv_block_pool *pool)
{
    int32_t n_free = 0, n_used = 0, n_cached = 0, n_hashed = 0;
    for (int32_t id = 0; id < pool->n_blocks; id++) {
        const struct kv_block *b = &pool->blocks[id];
        if (b->ref < 0 || b->in_lru != (b->ref == 0))
            return false;
        if (b->ref > 0)
            n_used++;
        else if (b->hashed)
            n_cached++;
        else
            n_free++;
        n_hashed += b->hashed;
    }
    if (n_free != pool->n_free || n_used != pool->n_used || n_cached != pool->n_cached)
        return false;
    if (n_free + n_used + n_cached != pool->n_blocks)
        return false;
    int32_t n_lru = 0;
    const struct list_node *node;
    list_for_each(node, &pool->lru)
    {
        const struct kv_block *b =
            (const struct kv_block *)(const void *)((const char *)node -
                                                    offsetof(struct kv_block, lru));
        if (b->ref != 0 || ++n_lru > pool->n_blocks)
            return false;
    }
    if (n_lru != n_free + n_cached)
        return false;
    int32_t n_chained = 0;
    for (uint64_t k = 0; k <= pool->bucket_mask; k++) {
        for (int32_t id = pool->buckets[k]; id >= 0; id = pool->blocks[id].hash_next) {
            const struct kv_block *b = &pool->blocks[id];
            if (!b->hashed || (b->hash & pool->bucket_mask) != k || ++n_chained > n_hashed)
                return false;
        }
    }
    return n_chained == n_hashed;
}
