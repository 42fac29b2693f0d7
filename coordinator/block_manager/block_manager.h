// BlockManager: the coordinator's global block tables, with fork and copy-on-write.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "coordinator/block_manager/block_allocator.h"

namespace pagedllm::coordinator {

// Whether a new sequence of some number of tokens can get its blocks.
enum class AllocationCheck {
  kOk,     // enough free blocks now (above the watermark)
  kLater,  // not now; it will fit once running sequences free their blocks
  kNever,  // more blocks than the whole pool (less the watermark) holds: bad input
};
const char* AllocationCheckName(AllocationCheck check);

// Workers copy block src_block_id into dst_block_id (all layers, all their KV heads) before
// the step's forward pass writes any KV.
struct BlockCopy {
  int32_t src_block_id = 0;
  int32_t dst_block_id = 0;
  bool operator==(const BlockCopy& o) const {
    return src_block_id == o.src_block_id && dst_block_id == o.dst_block_id;
  }
};

// Entry table_index of a sequence's block table now holds block_id (copy-on-write).
struct BlockReplacement {
  int32_t table_index = 0;
  int32_t block_id = 0;
  bool operator==(const BlockReplacement& o) const {
    return table_index == o.table_index && block_id == o.block_id;
  }
};

struct BlockManagerConfig {
  int32_t num_blocks = 0;   // blocks in the KV cache (every worker holds the same ids)
  int32_t block_size = 16;  // tokens per block
  // Fraction of the pool that admitting a new sequence must leave free (rounded down to
  // whole blocks), so that the running sequences can keep growing for a while before one
  // of them must be preempted. Growing running sequences may use these blocks.
  double watermark = 0.01;
};

// Maps each sequence (uint64 id) to its block table: entry i holds the KV of the sequence's
// tokens [i * block_size, (i + 1) * block_size). Tables are append-only, except that
// copy-on-write may swap an entry for a private copy. Block ids come from one BlockAllocator;
// a block shared by k tables (after Fork) has refcount k.
//
//   tokens     0 .. 15 | 16 .. 31 | 32 .. 40__  (block_size 16, 41 tokens)
//   table      [  7    ,   3      ,   12     ]   last block partly filled
//
// Not thread safe; owns ids, not memory. Every mutation is all or nothing: it first plans
// how many blocks it needs, fails with RESOURCE_EXHAUSTED (nothing changed) if they are not
// free, and only then takes them.
//
// Invariants (CheckInvariants):
//   - the refcount of every block equals the number of table entries that hold it
//     (a table holding a block twice counts twice);
//   - the allocator's own invariants: free ∪ used = all ids, no id twice on the free stack,
//     free blocks have refcount 0.
class BlockManager {
 public:
  explicit BlockManager(const BlockManagerConfig& config);

  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  int32_t block_size() const { return block_size_; }
  int32_t watermark_blocks() const { return watermark_blocks_; }
  int32_t num_total_blocks() const { return allocator_.num_total(); }
  int32_t num_free_blocks() const { return allocator_.num_free(); }
  // Fraction of blocks in use, in [0, 1].
  double usage() const;
  // ceil(num_tokens / block_size).
  int64_t NumBlocksForTokens(int64_t num_tokens) const;

  // Admission of a sequence that will hold num_tokens tokens: kNever if that needs more
  // than num_total_blocks() - watermark_blocks(); kOk if that many blocks are free with the
  // watermark left over; kLater otherwise.
  AllocationCheck CanAllocate(int64_t num_tokens) const;

  // Blocks AllocateSlots(seq_id, first_new_position, num_new_tokens, ...) would take now
  // (appended + copy-on-write). A sequence without a table counts as an empty one.
  int32_t NumBlocksNeeded(uint64_t seq_id, int first_new_position, int num_new_tokens) const;

  // Grows seq_id's table (created if absent) to hold num_tokens_total tokens, appending the
  // new block ids to *new_blocks. All or nothing.
  absl::Status EnsureCapacity(uint64_t seq_id, int num_tokens_total,
                              std::vector<int32_t>* new_blocks);

  // Makes seq_id's table (created if absent) ready for writing the KV of tokens at
  // positions [first_new_position, first_new_position + num_new_tokens):
  //   - blocks are appended until the table holds the last of them (ids appended to
  //     *new_blocks, in table order);
  //   - every block already in the table that the range writes into and that is shared
  //     (refcount > 1) is replaced by a fresh private block: (table index, new id) goes to
  //     *replacements, the old one loses a reference, and if the old block holds tokens
  //     before first_new_position, (old, new) goes to *copies for the workers.
  // Outputs are appended to, never cleared. All or nothing: on RESOURCE_EXHAUSTED nothing
  // changed.
  absl::Status AllocateSlots(uint64_t seq_id, int first_new_position, int num_new_tokens,
                             std::vector<int32_t>* new_blocks,
                             std::vector<BlockReplacement>* replacements,
                             std::vector<BlockCopy>* copies);

  // child (which must have no table) gets a copy of parent's table; every block gains a
  // reference. The first write into a shared block copies it (see AllocateSlots).
  void Fork(uint64_t parent_seq_id, uint64_t child_seq_id);

  // Drops seq_id's table and one reference to each of its blocks. No-op without a table.
  void Free(uint64_t seq_id);

  bool HasTable(uint64_t seq_id) const { return tables_.contains(seq_id); }
  // seq_id must have a table. The reference is valid until the next mutation.
  const std::vector<int32_t>& table(uint64_t seq_id) const;
  int32_t num_tables() const { return static_cast<int32_t>(tables_.size()); }
  int32_t RefCount(int32_t block_id) const { return allocator_.RefCount(block_id); }

  // Aborts with a message naming the block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  struct SlotPlan {
    int32_t first_index = 0;   // first table entry the range writes into
    int32_t end_index = 0;     // one past the last one
    int32_t num_appended = 0;  // blocks to append
    int32_t num_replaced = 0;  // shared blocks to copy on write
  };
  SlotPlan PlanSlots(const std::vector<int32_t>& table, int first_new_position,
                     int num_new_tokens) const;
  const std::vector<int32_t>& TableOrEmpty(uint64_t seq_id) const;

  const int32_t block_size_;
  const int32_t watermark_blocks_;
  BlockAllocator allocator_;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> tables_;
};

}  // namespace pagedllm::coordinator
