#include "coordinator/block_manager/block_allocator.h"

#include "common/check.h"

namespace pagedllm::coordinator {

BlockAllocator::BlockAllocator(int32_t num_blocks) {
  PAGEDLLM_CHECK(num_blocks > 0, "num_blocks must be positive, got ", num_blocks);
  ref_counts_.assign(num_blocks, 0);
  hash_.assign(num_blocks, 0);
  has_hash_.assign(num_blocks, 0);
  in_lru_.assign(num_blocks, 0);
  lru_prev_.assign(num_blocks + 1, num_blocks);
  lru_next_.assign(num_blocks + 1, num_blocks);
  free_ids_.reserve(num_blocks);
  // Pushed in reverse so that ids come out as 0, 1, 2, ...
  for (int32_t id = num_blocks - 1; id >= 0; --id) free_ids_.push_back(id);
}

void BlockAllocator::LruPushBack(int32_t block_id) {
  const int32_t sentinel = num_total();
  const int32_t last = lru_prev_[sentinel];
  lru_next_[last] = block_id;
  lru_prev_[block_id] = last;
  lru_next_[block_id] = sentinel;
  lru_prev_[sentinel] = block_id;
  in_lru_[block_id] = 1;
  ++num_evictable_;
}

void BlockAllocator::LruRemove(int32_t block_id) {
  lru_next_[lru_prev_[block_id]] = lru_next_[block_id];
  lru_prev_[lru_next_[block_id]] = lru_prev_[block_id];
  in_lru_[block_id] = 0;
  --num_evictable_;
}

int32_t BlockAllocator::Allocate() {
  int32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    PAGEDLLM_CHECK(num_evictable_ > 0, "no free block among ", num_total());
    id = lru_next_[num_total()];
    LruRemove(id);
    block_of_hash_.erase(hash_[id]);
    has_hash_[id] = 0;
    ++num_evictions_;
  }
  ref_counts_[id] = 1;
  return id;
}

void BlockAllocator::IncRef(int32_t block_id) {
  CheckId(block_id);
  if (ref_counts_[block_id] == 0) {
    PAGEDLLM_CHECK(in_lru_[block_id], "IncRef of free block ", block_id);
    LruRemove(block_id);
  }
  ++ref_counts_[block_id];
}

bool BlockAllocator::DecRef(int32_t block_id) {
  CheckId(block_id);
  PAGEDLLM_CHECK(ref_counts_[block_id] > 0, "DecRef of free block ", block_id);
  if (--ref_counts_[block_id] > 0) return false;
  if (has_hash_[block_id]) {
    LruPushBack(block_id);
  } else {
    free_ids_.push_back(block_id);
  }
  return true;
}

bool BlockAllocator::SetHash(int32_t block_id, uint64_t hash) {
  CheckId(block_id);
  PAGEDLLM_CHECK(ref_counts_[block_id] > 0 && !has_hash_[block_id], "SetHash of block ", block_id,
                 " (refcount ", ref_counts_[block_id], ", has hash ", int{has_hash_[block_id]},
                 ")");
  if (!block_of_hash_.emplace(hash, block_id).second) return false;
  hash_[block_id] = hash;
  has_hash_[block_id] = 1;
  return true;
}

int32_t BlockAllocator::Lookup(uint64_t hash) const {
  auto it = block_of_hash_.find(hash);
  return it == block_of_hash_.end() ? -1 : it->second;
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
    PAGEDLLM_CHECK(!has_hash_[id] && !in_lru_[id], "free block ", id,
                   " has a hash or is evictable");
  }
  int32_t lru_count = 0;
  for (int32_t id = lru_next_[num_total()]; id != num_total(); id = lru_next_[id]) {
    CheckId(id);
    PAGEDLLM_CHECK(in_lru_[id] && has_hash_[id] && ref_counts_[id] == 0, "evictable block ", id,
                   " has refcount ", ref_counts_[id], " or no hash");
    PAGEDLLM_CHECK(++lru_count <= num_evictable_, "the evictable list is longer than ",
                   num_evictable_);
  }
  PAGEDLLM_CHECK(lru_count == num_evictable_, lru_count, " evictable blocks listed, ",
                 num_evictable_, " counted");
  int32_t num_hashed = 0;
  for (int32_t id = 0; id < num_total(); ++id) {
    PAGEDLLM_CHECK(on_free_stack[id] || in_lru_[id] || ref_counts_[id] > 0, "block ", id,
                   " is neither free, evictable nor referenced (refcount ", ref_counts_[id], ")");
    PAGEDLLM_CHECK(!(in_lru_[id] && on_free_stack[id]), "block ", id, " is free and evictable");
    if (!has_hash_[id]) continue;
    ++num_hashed;
    PAGEDLLM_CHECK(Lookup(hash_[id]) == id, "block ", id, " has a hash that maps to block ",
                   Lookup(hash_[id]));
  }
  PAGEDLLM_CHECK(num_hashed == static_cast<int32_t>(block_of_hash_.size()), num_hashed,
                 " blocks have a hash, the index has ", block_of_hash_.size());
}

}  // namespace pagedllm::coordinator
