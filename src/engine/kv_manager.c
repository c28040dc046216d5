/* kv_manager.c: request-level KV bookkeeping on top of the block pool.
 *
 * A request's K/V live in req->block_table: block i holds positions [i*bs, (i+1)*bs). The
 * manager's job is to keep that table exactly as long as the tokens computed so far plus the
 * ones scheduled this step need, and nothing more (vLLM allocates lazily per step too: a request
 * that ends early never held blocks for its max_tokens).
 *
 * allocate_slots is all-or-nothing: it checks the pool has enough free + cached blocks before
 * touching anything, so the scheduler can try, fail, preempt someone and try again without
 * unwinding half an allocation.
 *
 * Prefix caching: full blocks are hashed in order as their K/V get computed (prompt and output
 * alike), each hash chained from the previous block's (req->hash_last), so a block's hash stands
 * for the whole prefix up to it. At admission the prompt is walked block by block through the
 * pool's map; the first miss ends the hit. The last prompt token is never served from the cache
 * (its logits are what the first sample needs), so a hit stops one block short when the prompt is
 * an exact multiple of the block size. */
#include "cinder/kv_manager.h"
#include "cinder/kv_block_pool.h"
#include "cinder/request.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

struct kv_manager {
    struct kv_block_pool *pool;
    int32_t block_size;
    bool enable_prefix_caching;
    int32_t *scratch; /* get_computed_blocks result / allocation staging */
    size_t cap_scratch;
};

struct kv_manager *kv_manager_create(const struct kv_manager_params *params, char *err)
{
    if (params->n_blocks <= 0 || params->block_size <= 0) {
        err_set(err, "KV manager needs n_blocks > 0 and block_size > 0 (got %d, %d)",
                params->n_blocks, params->block_size);
        return NULL;
    }
    struct kv_manager *kvm = xcalloc(1, sizeof(*kvm));
    kvm->pool = kv_block_pool_create(params->n_blocks, params->block_size);
    kvm->block_size = params->block_size;
    kvm->enable_prefix_caching = params->enable_prefix_caching;
    return kvm;
}

void kv_manager_destroy(struct kv_manager *kvm)
{
    if (!kvm)
        return;
    kv_block_pool_destroy(kvm->pool);
    free(kvm->scratch);
    free(kvm);
}

struct kv_block_pool *kv_manager_pool(struct kv_manager *kvm)
{
    return kvm->pool;
}

int32_t kv_manager_block_size(const struct kv_manager *kvm)
{
    return kvm->block_size;
}

int32_t kv_manager_blocks_for(const struct kv_manager *kvm, int32_t n_tokens)
{
    return (n_tokens + kvm->block_size - 1) / kvm->block_size;
}

static int32_t *kvm_scratch(struct kv_manager *kvm, size_t n)
{
    xgrow((void **)&kvm->scratch, &kvm->cap_scratch, n > 0 ? n : 1, sizeof(int32_t));
    return kvm->scratch;
}

static void table_reserve(struct request *req, int32_t n)
{
    if (n <= req->cap_blocks)
        return;
    int32_t cap = req->cap_blocks ? req->cap_blocks : 4;
    while (cap < n)
        cap *= 2;
    req->block_table = xrealloc(req->block_table, sizeof(int32_t) * (size_t)cap);
    req->cap_blocks = cap;
}

int32_t kv_manager_get_computed_blocks(struct kv_manager *kvm, const struct request *req,
                                       const int32_t **ids)
{
    *ids = kvm->scratch;
    if (!kvm->enable_prefix_caching || req->n_tokens <= 1)
        return 0;
    const int32_t bs = kvm->block_size;
    int32_t max_blocks = (req->n_tokens - 1) / bs;
    int32_t *out = kvm_scratch(kvm, (size_t)max_blocks);
    *ids = out;
    uint64_t h = 0;
    int32_t parent = -1, n = 0;
    for (int32_t i = 0; i < max_blocks; i++) {
        const int32_t *toks = req->tokens + (size_t)i * (size_t)bs;
        h = kv_block_pool_hash(h, toks, bs);
        int32_t id = kv_block_pool_lookup(kvm->pool, parent, h, toks);
        if (id < 0)
            break;
        out[n++] = id;
        parent = id;
    }
    return n;
}

int kv_manager_allocate_slots_prefix(struct kv_manager *kvm, struct request *req, int32_t n_new,
                                     const int32_t *computed, int32_t n_computed)
{
    CND_ASSERT(n_new >= 0 && n_computed >= 0);
    const int32_t bs = kvm->block_size;
    if (n_computed > 0)
        CND_ASSERT(req->n_blocks == 0 && req->n_computed == 0);
    int32_t n_tok_computed = n_computed > 0 ? n_computed * bs : req->n_computed;
    int32_t n_have = req->n_blocks + n_computed;
    int32_t n_need = kv_manager_blocks_for(kvm, n_tok_computed + n_new) - n_have;
    if (n_need < 0)
        n_need = 0;
    /* cached prefix blocks with ref 0 leave the free+cached count when we take them */
    int32_t n_avail = kv_block_pool_n_available(kvm->pool);
    for (int32_t i = 0; i < n_computed; i++)
        n_avail -= kv_block_pool_refcount(kvm->pool, computed[i]) == 0;
    if (n_need > n_avail)
        return CND_ENOSPC;

    table_reserve(req, n_have + n_need);
    if (n_computed > 0) {
        uint64_t h = 0;
        for (int32_t i = 0; i < n_computed; i++) {
            kv_block_pool_ref(kvm->pool, computed[i]);
            req->block_table[i] = computed[i];
            h = kv_block_pool_hash(h, req->tokens + (size_t)i * (size_t)bs, bs);
        }
        req->n_blocks = n_computed;
        req->n_computed = n_tok_computed;
        req->n_blocks_hashed = n_computed;
        req->hash_last = h;
    }
    if (n_need > 0) {
        int rc = kv_block_pool_alloc(kvm->pool, n_need, req->block_table + req->n_blocks);
        CND_ASSERT(rc == 0); /* checked above */
        req->n_blocks += n_need;
    }
    return 0;
}

int kv_manager_allocate_slots(struct kv_manager *kvm, struct request *req, int32_t n_new)
{
    return kv_manager_allocate_slots_prefix(kvm, req, n_new, NULL, 0);
}

void kv_manager_cache_blocks(struct kv_manager *kvm, struct request *req)
{
    const int32_t bs = kvm->block_size;
    int32_t n_full = CND_MIN(req->n_computed, req->n_tokens) / bs;
    n_full = CND_MIN(n_full, req->n_blocks);
    for (int32_t i = req->n_blocks_hashed; i < n_full; i++) {
        const int32_t *toks = req->tokens + (size_t)i * (size_t)bs;
        uint64_t h = kv_block_pool_hash(req->hash_last, toks, bs);
        if (kvm->enable_prefix_caching) {
            int32_t parent = i > 0 ? req->block_table[i - 1] : -1;
            kv_block_pool_set_hash(kvm->pool, req->block_table[i], parent, h, toks);
        }
        req->hash_last = h;
        req->n_blocks_hashed = i + 1;
    }
}

void kv_manager_free_request(struct kv_manager *kvm, struct request *req)
{
    for (int32_t i = req->n_blocks - 1; i >= 0; i--)
        kv_block_pool_unref(kvm->pool, req->block_table[i]);
    req->n_blocks = 0;
    req->n_computed = 0;
    req->n_blocks_hashed = 0;
    req->hash_last = 0;
}

void kv_manager_fork(struct kv_manager *kvm, const struct request *src, struct request *dst)
{
    CND_ASSERT(dst->n_blocks == 0);
    table_reserve(dst, src->n_blocks);
    for (int32_t i = 0; i < src->n_blocks; i++) {
        kv_block_pool_ref(kvm->pool, src->block_table[i]);
        dst->block_table[i] = src->block_table[i];
    }
    dst->n_blocks = src->n_blocks;
    dst->n_computed = src->n_computed;
    dst->n_blocks_hashed = src->n_blocks_hashed;
    dst->hash_last = src->hash_last;
}

void kv_manager_fork_prefix(struct kv_manager *kvm, const struct request *src, struct request *dst,
                            int32_t n_blocks)
{
    const int32_t bs = kvm->block_size;
    CND_ASSERT(dst->n_blocks == 0);
    CND_ASSERT(n_blocks >= 0 && n_blocks <= src->n_blocks);
    CND_ASSERT((int64_t)n_blocks * bs <= src->n_computed);
    CND_ASSERT((int64_t)n_blocks * bs <= dst->n_tokens);
    table_reserve(dst, n_blocks);
    uint64_t h = 0;
    for (int32_t i = 0; i < n_blocks; i++) {
        kv_block_pool_ref(kvm->pool, src->block_table[i]);
        dst->block_table[i] = src->block_table[i];
        h = kv_block_pool_hash(h, dst->tokens + (size_t)i * (size_t)bs, bs);
    }
    dst->n_blocks = n_blocks;
    dst->n_computed = n_blocks * bs;
    dst->n_blocks_hashed = n_blocks;
    dst->hash_last = h;
}

int kv_manager_cow_last_block(struct kv_manager *kvm, struct request *req, int32_t *src_id,
                              int32_t *dst_id)
{
    int32_t i = req->n_computed / kvm->block_size;
    if (i >= req->n_blocks || kv_block_pool_refcount(kvm->pool, req->block_table[i]) <= 1)
        return 0;
    CND_ASSERT(req->n_blocks_hashed <= i); /* a hashed block is full: never written again */
    int32_t fresh;
    if (kv_block_pool_alloc(kvm->pool, 1, &fresh) != 0)
        return CND_ENOSPC;
    int32_t old = req->block_table[i];
    req->block_table[i] = fresh;
    kv_block_pool_unref(kvm->pool, old);
    *src_id = old;
    *dst_id = fresh;
    return 1;
}

bool kv_manager_check_invariants(const struct kv_manager *kvm)
{
    return kv_block_pool_check_invariants(kvm->pool);
}
