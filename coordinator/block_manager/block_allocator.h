// BlockAllocator: hands out KV-cache block ids, counts references to them, and keeps freed
// blocks that hold a cached prefix reusable until their id is needed (automatic prefix caching).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace pagedllm::coordinator {

// Owns the ids [0, num_blocks) of the KV-cache blocks and a reference count for each. Not
// thread safe; owns ids, not memory: the blocks themselves live in every worker's KV cache
// slice, and the coordinator only decides which id holds what.
//
// No block is reserved: padding tokens are marked by a slot of -1 in the workers' slot
// mapping, never by a "null block", so every id can hold real tokens.
//
// A block is in one of three states:
//   free       refcount 0, no hash, on the free stack (the most recently freed id is reused
//              first; a fresh allocator hands out 0, 1, 2, ...);
//   used       refcount > 0, with or without a hash;
//   evictable  refcount 0 with a hash: its KV is a cached prefix block that a new sequence may
//              take back (IncRef); it is evicted (hash dropped) only when Allocate finds the free
//              stack empty, least recently freed first.
// A hash names a full block by its tokens and all the tokens before it (BlockManager computes
// it); at most one block holds a given hash.
//
// Invariants (CheckInvariants):
//   - free ∪ used ∪ evictable = all ids, disjoint; no id twice on the free stack or the LRU;
//   - block_of_hash_[h] == b exactly when b has hash h.
class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t num_blocks);

  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // Takes a free id, or evicts the least recently freed evictable one, and gives it refcount 1
  // and no hash. There must be one (check num_free() first).
  int32_t Allocate();
  // Adds a reference to a used id, or takes an evictable one back into use (refcount 1).
  void IncRef(int32_t block_id);
  // Drops a reference; at 0 the id becomes free, or evictable if it has a hash. Returns true
  // when it reached 0.
  bool DecRef(int32_t block_id);

  // Prefix cache: gives a used block without a hash the hash `hash`. Returns false (and does
  // nothing) when another block already holds that hash.
  bool SetHash(int32_t block_id, uint64_t hash);
  // The block holding `hash` (used or evictable), or -1.
  int32_t Lookup(uint64_t hash) const;
  bool HasHash(int32_t block_id) const { return has_hash_[block_id]; }

  int32_t RefCount(int32_t block_id) const;
  // Blocks Allocate can hand out: free plus evictable.
  int32_t num_free() const { return static_cast<int32_t>(free_ids_.size()) + num_evictable_; }
  int32_t num_evictable() const { return num_evictable_; }
  int32_t num_total() const { return static_cast<int32_t>(ref_counts_.size()); }
  int64_t num_evictions() const { return num_evictions_; }

  // Aborts with a message naming the block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  void CheckId(int32_t block_id) const;
  void LruPushBack(int32_t block_id);
  void LruRemove(int32_t block_id);

  std::vector<int32_t> free_ids_;    // stack; back() is handed out next
  std::vector<int32_t> ref_counts_;  // [num_blocks]
  std::vector<uint64_t> hash_;       // [num_blocks], meaningful where has_hash_
  std::vector<char> has_hash_;       // [num_blocks]
  absl::flat_hash_map<uint64_t, int32_t> block_of_hash_;
  // Evictable blocks as a doubly linked list through these arrays; index num_blocks is the
  // sentinel (lru_next_[sentinel] is the least recently freed).
  std::vector<int32_t> lru_prev_, lru_next_;  // [num_blocks + 1]
  std::vector<char> in_lru_;                  // [num_blocks]
  int32_t num_evictable_ = 0;
  int64_t num_evictions_ = 0;
};

}  // namespace pagedllm::coordinator
