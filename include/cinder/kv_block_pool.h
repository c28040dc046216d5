/* kv_block_pool.h: the KV cache's block ids, their ref counts, the free list and the prefix-cache
 * hash map (vLLM's BlockPool). No device memory: the backend owns the K/V storage and block id b
 * indexes slots [b * block_size, (b + 1) * block_size). Engine thread only; not thread-safe.
 *
 * Every block is in exactly one state:
 *   used    ref > 0 (held by one or more requests; may carry a hash),
 *   cached  ref == 0 and hashed (its K/V still valid, found again by a prefix lookup),
 *   free    ref == 0, no hash.
 * Free and cached blocks sit in one LRU list; allocation takes from its head, evicting (dropping
 * the hash of) a cached block when it gets there. free + used + cached == total at all times. */
#ifndef CINDER_KV_BLOCK_POOL_H
#define CINDER_KV_BLOCK_POOL_H

#include "cinder/common.h"

struct kv_block_pool;

struct kv_block_pool *kv_block_pool_create(int32_t n_blocks, int32_t block_size);
void kv_block_pool_destroy(struct kv_block_pool *pool);

int32_t kv_block_pool_n_total(const struct kv_block_pool *pool);
int32_t kv_block_pool_n_free(const struct kv_block_pool *pool);   /* ref 0, no hash */
int32_t kv_block_pool_n_used(const struct kv_block_pool *pool);   /* ref > 0 */
int32_t kv_block_pool_n_cached(const struct kv_block_pool *pool); /* ref 0, hashed */
/* Blocks an allocation can get: free + cached. */
int32_t kv_block_pool_n_available(const struct kv_block_pool *pool);
int32_t kv_block_pool_block_size(const struct kv_block_pool *pool);

/* Take n blocks (ref 1 each) into ids[0..n): free ones first, then the least recently freed
 * cached ones (their hashes are dropped). Returns 0, or CND_ENOSPC with nothing taken. */
int kv_block_pool_alloc(struct kv_block_pool *pool, int32_t n, int32_t *ids);
/* One more holder of block id; a cached block (ref 0) leaves the LRU and becomes used. */
void kv_block_pool_ref(struct kv_block_pool *pool, int32_t id);
/* One holder fewer; at 0 the block goes to the LRU: a hashed one to the tail (kept as long as
 * possible), an unhashed one to the head (reused first). */
void kv_block_pool_unref(struct kv_block_pool *pool, int32_t id);
int32_t kv_block_pool_refcount(const struct kv_block_pool *pool, int32_t id);

/* ---- prefix cache ----
 * A full block's hash chains its parent's: h = kv_block_pool_hash(parent_hash, tokens). Lookups
 * are collision-safe: besides the 64-bit hash, a match needs the same block_size token ids and the
 * same parent block (id and allocation generation), so a block is found only under the exact
 * chain of blocks its K/V were computed after. */
uint64_t kv_block_pool_hash(uint64_t parent_hash, const int32_t *tokens, int32_t n);
/* A hashed block (used or cached) with this hash, these tokens and parent block parent_id (-1 for
 * the first block of a sequence), or -1. Does not take a reference. */
int32_t kv_block_pool_lookup(const struct kv_block_pool *pool, int32_t parent_id, uint64_t hash,
                             const int32_t *tokens);
/* Register used block id, now full of tokens[0..block_size) computed after parent_id, under hash.
 * Returns true when registered; false when an identical block is already registered (id then
 * stays unhashed) or id is already hashed. */
bool kv_block_pool_set_hash(struct kv_block_pool *pool, int32_t id, int32_t parent_id,
                            uint64_t hash, const int32_t *tokens);
bool kv_block_pool_is_hashed(const struct kv_block_pool *pool, int32_t id);
/* Drop every hash (cached blocks become free). */
void kv_block_pool_reset_cache(struct kv_block_pool *pool);

/* Counters and every block's state agree, the LRU holds exactly the ref-0 blocks, and the hash
 * map holds exactly the hashed blocks. Returns true when all hold (for tests). */
bool kv_block_pool_check_invariants(const struct kv_block_pool *pool);

#endif
