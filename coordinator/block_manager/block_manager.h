// BlockManager: the coordinator's global block tables, with fork and copy-on-write, the
// prefix-cache index and the swap map.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
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

// Workers move a block between their KV cache (device_block) and their pinned host swap space
// (host_block).
struct BlockSwap {
  int32_t device_block = 0;
  int32_t host_block = 0;
  bool operator==(const BlockSwap& o) const {
    return device_block == o.device_block && host_block == o.host_block;
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

// One sequence's part of a step: it writes the KV of positions [first_position,
// first_position + num_tokens).
struct SlotRequest {
  uint64_t seq_id = 0;
  int first_position = 0;
  int num_tokens = 0;
};

struct BlockManagerConfig {
  int32_t num_blocks = 0;       // blocks in the KV cache (every worker holds the same ids)
  int32_t block_size = 16;      // tokens per block
  int32_t num_host_blocks = 0;  // blocks of every worker's pinned host swap space
  // Fraction of the pool that admitting a new sequence must leave free (rounded down to
  // whole blocks), so that the running sequences can keep growing for a while before one
  // of them must be preempted. Growing running sequences may use these blocks.
  double watermark = 0.01;
};

// Maps each sequence (uint64 id) to its block table: entry i holds the KV of the sequence's
// tokens [i * block_size, (i + 1) * block_size). Tables are append-only, except that
// copy-on-write may swap an entry for a private copy. Block ids come from one BlockAllocator;
// a block shared by k tables (after Fork, or a prefix-cache hit) has refcount k.
//
//   tokens     0 .. 15 | 16 .. 31 | 32 .. 40__  (block_size 16, 41 tokens)
//   table      [  7    ,   3      ,   12     ]   last block partly filled
//
// Prefix cache: a full block whose KV is computed can be registered under a hash of its tokens
// chained with the hash of everything before it (RegisterBlock); a new sequence then starts its
// table with the longest run of cached blocks its own hashes find (TakeCachedPrefix). Freed
// cached blocks stay findable until their id is needed (BlockAllocator's evictable state).
// Registered blocks are never written again: writes only go past a sequence's computed tokens.
//
// Swap: a swapped-out sequence's table holds host block ids (from a second allocator, one per
// distinct device block) until it is swapped in to fresh device blocks.
//
// Not thread safe; owns ids, not memory. Every mutation is all or nothing: it first plans
// how many blocks it needs, fails with RESOURCE_EXHAUSTED (nothing changed) if they are not
// free, and only then takes them.
//
// Invariants (CheckInvariants):
//   - the refcount of every device block equals the number of device table entries that hold
//     it, and of every host block the number of swapped table entries (a table holding a block
//     twice counts twice);
//   - no sequence has both a device and a swapped table;
//   - the allocators' own invariants.
class BlockManager {
 public:
  explicit BlockManager(const BlockManagerConfig& config);

  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  int32_t block_size() const { return block_size_; }
  int32_t watermark_blocks() const { return watermark_blocks_; }
  int32_t num_total_blocks() const { return allocator_.num_total(); }
  // Blocks a new allocation can take (free or evictable cached ones).
  int32_t num_free_blocks() const { return allocator_.num_free(); }
  int32_t num_cached_free_blocks() const { return allocator_.num_evictable(); }
  int32_t num_total_host_blocks() const { return num_host_blocks_; }
  int32_t num_free_host_blocks() const;
  // Fraction of blocks in use, in [0, 1].
  double usage() const;
  // ceil(num_tokens / block_size).
  int64_t NumBlocksForTokens(int64_t num_tokens) const;

  // Admission of a sequence that will hold num_tokens tokens: kNever if that needs more
  // than num_total_blocks() - watermark_blocks(); kOk if that many blocks are free with the
  // watermark left over; kLater otherwise.
  AllocationCheck CanAllocate(int64_t num_tokens) const;

  // Blocks AllocateSlots would take for all of `requests`, in order (appended + copy-on-write;
  // a block shared only by sequences of the list is copied for all but the last writer).
  int32_t NumBlocksNeeded(absl::Span<const SlotRequest> requests) const;
  // NumBlocksNeeded(requests) <= num_free_blocks(). Reads no table while the free blocks exceed
  // the requests' whole tables (every entry up to the last written one), as they mostly do: the
  // scheduler asks this for every running group every step.
  bool SlotsFit(absl::Span<const SlotRequest> requests) const;

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

  // Drops seq_id's table (device or swapped) and one reference to each of its blocks. No-op
  // without a table.
  void Free(uint64_t seq_id);

  // Prefix cache. How many leading entries of `block_hashes` (at most max_blocks) name cached
  // blocks, and how many of those are evictable (taking them lowers num_free_blocks()).
  struct CachedPrefix {
    int32_t num_blocks = 0;
    int32_t num_evictable = 0;
  };
  CachedPrefix FindCachedPrefix(absl::Span<const uint64_t> block_hashes, int max_blocks) const;
  // seq_id (which must have no table) gets a table of the first num_blocks cached blocks of
  // block_hashes (FindCachedPrefix must have found them).
  void TakeCachedPrefix(uint64_t seq_id, absl::Span<const uint64_t> block_hashes,
                        int32_t num_blocks);
  // Entry table_index of seq_id's table holds fully computed tokens named by `hash`: cache it
  // (unless another block already holds that hash, or this one has a hash).
  void RegisterBlock(uint64_t seq_id, int32_t table_index, uint64_t hash);

  // Swap. Host blocks SwapOut(seq_ids) would take (distinct device blocks of their tables).
  int32_t NumBlocksToSwapOut(absl::Span<const uint64_t> seq_ids) const;
  // Moves the device tables of seq_ids (those without one are skipped) to host blocks: one host
  // block per distinct device block, listed in *swaps. RESOURCE_EXHAUSTED (nothing changed) when
  // the host pool is too small.
  absl::Status SwapOut(absl::Span<const uint64_t> seq_ids, std::vector<BlockSwap>* swaps);
  // Device blocks SwapIn(seq_ids) would take (distinct host blocks of their swapped tables).
  int32_t NumBlocksToSwapIn(absl::Span<const uint64_t> seq_ids) const;
  // Moves swapped tables back to fresh device blocks, listed in *swaps. All or nothing.
  absl::Status SwapIn(absl::Span<const uint64_t> seq_ids, std::vector<BlockSwap>* swaps);
  bool IsSwapped(uint64_t seq_id) const { return swapped_tables_.contains(seq_id); }

  bool HasTable(uint64_t seq_id) const { return tables_.contains(seq_id); }
  // seq_id must have a device table. The reference is valid until the next mutation.
  const std::vector<int32_t>& table(uint64_t seq_id) const;
  int32_t num_tables() const { return static_cast<int32_t>(tables_.size()); }
  int32_t num_swapped_tables() const { return static_cast<int32_t>(swapped_tables_.size()); }
  int32_t RefCount(int32_t block_id) const { return allocator_.RefCount(block_id); }
  int64_t num_cache_evictions() const { return allocator_.num_evictions(); }

  // Aborts with a message naming the block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  struct SlotPlan {
    int32_t first_index = 0;   // first table entry the range writes into
    int32_t end_index = 0;     // one past the last one
    int32_t num_appended = 0;  // blocks to append
  };
  SlotPlan PlanSlots(const std::vector<int32_t>& table, int first_new_position,
                     int num_new_tokens) const;
  const std::vector<int32_t>& TableOrEmpty(uint64_t seq_id) const;

  const int32_t block_size_;
  const int32_t watermark_blocks_;
  const int32_t num_host_blocks_;
  BlockAllocator allocator_;
  std::unique_ptr<BlockAllocator> host_allocator_;  // null without swap space
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> tables_;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> swapped_tables_;  // host block ids
};

}  // namespace pagedllm::coordinator
