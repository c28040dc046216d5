/* kv_manager.h: per-request block tables over a kv_block_pool (vLLM's KVCacheManager): how many
 * blocks a request needs for its next tokens, prefix-cache hits at admission, registering newly
 * filled blocks in the cache, and giving blocks back. Engine thread only; not thread-safe.
 * Reads and writes the sequence-state fields of struct request (block_table, n_blocks,
 * n_computed, n_blocks_hashed, hash_last); never the outbox. */
#ifndef CINDER_KV_MANAGER_H
#define CINDER_KV_MANAGER_H

#include "cinder/common.h"

struct request;
struct kv_block_pool;
struct kv_manager;

struct kv_manager_params {
    int32_t n_blocks;
    int32_t block_size;
    bool enable_prefix_caching;
};

struct kv_manager *kv_manager_create(const struct kv_manager_params *params, char *err);
void kv_manager_destroy(struct kv_manager *kvm);
/* The pool (borrowed, valid until kv_manager_destroy): counters for stats. */
struct kv_block_pool *kv_manager_pool(struct kv_manager *kvm);
int32_t kv_manager_block_size(const struct kv_manager *kvm);
/* Blocks that n_tokens tokens occupy. */
int32_t kv_manager_blocks_for(const struct kv_manager *kvm, int32_t n_tokens);

/* Prefix lookup for a request not holding blocks: the longest run of cached full blocks matching
 * the start of req->tokens, never covering the last token (one token must be computed to get
 * logits). *ids points into kvm scratch, valid until the next call. Returns the number of blocks
 * (0 when prefix caching is off). No side effects. */
int32_t kv_manager_get_computed_blocks(struct kv_manager *kvm, const struct request *req,
                                       const int32_t **ids);

/* Make room for n_new more tokens of req after its req->n_computed (allocating the blocks that
 * positions up to n_computed + n_new - 1 need). Returns 0, or CND_ENOSPC with nothing changed. */
int kv_manager_allocate_slots(struct kv_manager *kvm, struct request *req, int32_t n_new);
/* Admission form: req holds no blocks; first take the n_computed prefix blocks found by
 * kv_manager_get_computed_blocks (req->n_computed becomes n_computed * block_size), then room for
 * n_new tokens after them. All or nothing: CND_ENOSPC leaves req and the pool unchanged. */
int kv_manager_allocate_slots_prefix(struct kv_manager *kvm, struct request *req, int32_t n_new,
                                     const int32_t *computed, int32_t n_computed);
/* After req->n_computed advanced: register the blocks it filled completely in the prefix cache
 * (hash chained from the previous block). Cheap when nothing new is full. */
void kv_manager_cache_blocks(struct kv_manager *kvm, struct request *req);
/* All of req's blocks back to the pool (last block first, so a request's tail is evicted before
 * its head); hashed ones stay cached in the LRU. req->n_computed becomes 0. Idempotent. */
void kv_manager_free_request(struct kv_manager *kvm, struct request *req);

/* ---- sharing (n > 1, beam-like forks) ----
 * Give dst (holding no blocks) the same blocks as src, one more reference each, and src's
 * n_computed: the forked sequences then share the prompt's K/V. */
void kv_manager_fork(struct kv_manager *kvm, const struct request *src, struct request *dst);
/* n > 1 fan-out: give dst (holding no blocks, same leading tokens as src) src's first n_blocks
 * blocks, all full and computed, one more reference each; dst->n_computed becomes
 * n_blocks * block_size and their hashes count as registered. dst computes the rest itself (the
 * prompt's partial last block is recomputed rather than copied), so no shared block is ever
 * written. */
void kv_manager_fork_prefix(struct kv_manager *kvm, const struct request *src, struct request *dst,
                            int32_t n_blocks);
/* Copy-on-write before writing position req->n_computed: when the block holding it is shared
 * (ref > 1), replace it in req's table by a fresh block and return 1 with src_id and dst_id set:
 * the caller must copy the block's K/V on the device before the next forward. Returns 0 when no
 * copy is needed, CND_ENOSPC (nothing changed) when no block is left. */
int kv_manager_cow_last_block(struct kv_manager *kvm, struct request *req, int32_t *src_id,
                              int32_t *dst_id);

bool kv_manager_check_invariants(const struct kv_manager *kvm);

#endif
