#include "coordinator/block_manager/block_allocator.h"

#include "common/check.h"

namespace pagedllm::coordinator {

BlockAllocator::BlockAllocator(int32_t num_blocks) {
  PAGEDLLM_CHECK(num_blocks > 0, "num_blocks must be positive, got ", num_blocks);
  ref_counts_.assign(num_blocks, 0);
  free_ids_.reserve(num_blocks);
  // Pushed in reverse so that ids come out as 0, 1, 2, ...
  for (int32_t id = num_blocks - 1; id >= 0; --id) free_ids_.push_back(id);
}

int32_t BlockAllocator::Allocate() {
  PAGEDLLM_CHECK(!free_ids_.empty(), "no free block among ", num_total());
  const int32_t id = free_ids_.back();
  free_ids_.pop_back();
  ref_counts_[id] = 1;
  return id;
}

void BlockAllocator::IncRef(int32_t block_id) {
  CheckId(block_id);
  PAGEDLLM_CHECK(ref_counts_[block_id] > 0, "IncRef of free block ", block_id);
  ++ref_counts_[block_id];
}

bool BlockAllocator::DecRef(int32_t block_id) {
  CheckId(block_id);
  PAGEDLLM_CHECK(ref_counts_[block_id] > 0, "DecRef of free block ", block_id);
  if (--ref_counts_[block_id] > 0) return false;
  free_ids_.push_back(block_id);
  return true;
}

int32_t BlockAllocator::RefCount(int32_t block_id) const {
  CheckId(block_id);
  return ref_counts_[block_id];
}

void BlockAllocator::CheckId(int32_t block_id) const {
  PAGEDLLM_CHECK(block_id >= 0 && block_id < num_total(), "block id ", block_id,
                 " out of range [0, ", num_total(), ")");
}

void BlockAllocator::CheckInvariants() const {
  std::vector<char> on_free_stack(ref_counts_.size(), 0);
  for (int32_t id : free_ids_) {
    CheckId(id);
    PAGEDLLM_CHECK(!on_free_stack[id], "block ", id, " is on the free stack twice");
    on_free_stack[id] = 1;
    PAGEDLLM_CHECK(ref_counts_[id] == 0, "free block ", id, " has refcount ", ref_counts_[id]);
  }
  for (int32_t id = 0; id < num_total(); ++id) {
    PAGEDLLM_CHECK(on_free_stack[id] || ref_counts_[id] > 0, "block ", id,
                   " is neither free nor referenced (refcount ", ref_counts_[id], ")");
  }
}

}  // namespace pagedllm::coordinator
