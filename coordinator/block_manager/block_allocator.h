// BlockAllocator: hands out KV-cache block ids and counts references to them.
#pragma once

#include <cstdint>
#include <vector>

namespace pagedllm::coordinator {

// Owns the ids [0, num_blocks) of the KV-cache blocks and a reference count for each. Not
// thread safe; owns ids, not memory: the blocks themselves live in every worker's KV cache
// slice, and the coordinator only decides which id holds what.
//
// No block is reserved: padding tokens are marked by a slot of -1 in the workers' slot
// mapping, never by a "null block", so every id can hold real tokens.
//
// Free ids sit in a vector used as a stack (the most recently freed id is reused first; a
// fresh allocator hands out 0, 1, 2, ...). Reference counts sit in a flat array.
//
// Invariants (CheckInvariants):
//   - every id is either on the free stack with refcount 0, or off it with refcount > 0
//     (free ∪ used = all ids);
//   - no id is on the free stack twice.
class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t num_blocks);

  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // Takes a free id and gives it refcount 1. There must be one (check num_free() first).
  int32_t Allocate();
  // Adds a reference to an allocated id.
  void IncRef(int32_t block_id);
  // Drops a reference; at 0 the id goes back on the free stack. Returns true if it did.
  bool DecRef(int32_t block_id);

  int32_t RefCount(int32_t block_id) const;
  int32_t num_free() const { return static_cast<int32_t>(free_ids_.size()); }
  int32_t num_total() const { return static_cast<int32_t>(ref_counts_.size()); }

  // Aborts with a message naming the block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  void CheckId(int32_t block_id) const;

  std::vector<int32_t> free_ids_;    // stack; back() is handed out next
  std::vector<int32_t> ref_counts_;  // [num_blocks]
};

}  // namespace pagedllm::coordinator
