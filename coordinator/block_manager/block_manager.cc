#include "coordinator/block_manager/block_manager.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagedllm::coordinator {

const char* AllocationCheckName(AllocationCheck check) {
  switch (check) {
    case AllocationCheck::kOk:
      return "OK";
    case AllocationCheck::kLater:
      return "LATER";
    case AllocationCheck::kNever:
      return "NEVER";
  }
  return "?";
}

namespace {

int32_t WatermarkBlocks(const BlockManagerConfig& config) {
  PAGEDLLM_CHECK(config.watermark >= 0.0 && config.watermark < 1.0,
                 "watermark must be in [0, 1), got ", config.watermark);
  return static_cast<int32_t>(std::floor(config.watermark * config.num_blocks));
}

}  // namespace

BlockManager::BlockManager(const BlockManagerConfig& config)
    : block_size_(config.block_size),
      watermark_blocks_(WatermarkBlocks(config)),
      allocator_(config.num_blocks) {
  PAGEDLLM_CHECK(block_size_ > 0, "block_size must be positive, got ", block_size_);
}

double BlockManager::usage() const {
  return 1.0 - static_cast<double>(num_free_blocks()) / num_total_blocks();
}

int64_t BlockManager::NumBlocksForTokens(int64_t num_tokens) const {
  return (num_tokens + block_size_ - 1) / block_size_;
}

AllocationCheck BlockManager::CanAllocate(int64_t num_tokens) const {
  const int64_t needed = NumBlocksForTokens(num_tokens);
  if (needed > num_total_blocks() - watermark_blocks_) return AllocationCheck::kNever;
  if (num_free_blocks() - needed >= watermark_blocks_) return AllocationCheck::kOk;
  return AllocationCheck::kLater;
}

const std::vector<int32_t>& BlockManager::TableOrEmpty(uint64_t seq_id) const {
  static const std::vector<int32_t>* const kEmpty = new std::vector<int32_t>();
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? *kEmpty : it->second;
}

const std::vector<int32_t>& BlockManager::table(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  PAGEDLLM_CHECK(it != tables_.end(), "sequence ", seq_id, " has no block table");
  return it->second;
}

BlockManager::SlotPlan BlockManager::PlanSlots(const std::vector<int32_t>& table,
                                               int first_new_position, int num_new_tokens) const {
  PAGEDLLM_CHECK(first_new_position >= 0 && num_new_tokens >= 0, "bad token range: first ",
                 first_new_position, ", count ", num_new_tokens);
  SlotPlan plan;
  if (num_new_tokens == 0) return plan;
  const int64_t end_position = int64_t{first_new_position} + num_new_tokens;
  plan.first_index = first_new_position / block_size_;
  plan.end_index = static_cast<int32_t>(NumBlocksForTokens(end_position));
  const int32_t table_size = static_cast<int32_t>(table.size());
  plan.num_appended = std::max(0, plan.end_index - table_size);
  for (int32_t i = plan.first_index; i < std::min(plan.end_index, table_size); ++i) {
    if (allocator_.RefCount(table[i]) > 1) ++plan.num_replaced;
  }
  return plan;
}

int32_t BlockManager::NumBlocksNeeded(uint64_t seq_id, int first_new_position,
                                      int num_new_tokens) const {
  const SlotPlan plan = PlanSlots(TableOrEmpty(seq_id), first_new_position, num_new_tokens);
  return plan.num_appended + plan.num_replaced;
}

absl::Status BlockManager::EnsureCapacity(uint64_t seq_id, int num_tokens_total,
                                          std::vector<int32_t>* new_blocks) {
  PAGEDLLM_CHECK(num_tokens_total >= 0, "num_tokens_total is ", num_tokens_total);
  const std::vector<int32_t>& current = TableOrEmpty(seq_id);
  const int64_t needed =
      std::max<int64_t>(0, NumBlocksForTokens(num_tokens_total) - int64_t(current.size()));
  if (needed > num_free_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("sequence ", seq_id, " needs ", needed, " more blocks for ", num_tokens_total,
                     " tokens but ", num_free_blocks(), " are free"));
  }
  std::vector<int32_t>& table = tables_[seq_id];
  for (int64_t i = 0; i < needed; ++i) {
    table.push_back(allocator_.Allocate());
    new_blocks->push_back(table.back());
  }
  return absl::OkStatus();
}

absl::Status BlockManager::AllocateSlots(uint64_t seq_id, int first_new_position,
                                         int num_new_tokens, std::vector<int32_t>* new_blocks,
                                         std::vector<BlockReplacement>* replacements,
                                         std::vector<BlockCopy>* copies) {
  // Plan.
  const SlotPlan plan = PlanSlots(TableOrEmpty(seq_id), first_new_position, num_new_tokens);
  const int32_t needed = plan.num_appended + plan.num_replaced;
  if (needed > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sequence ", seq_id, " needs ", needed, " blocks (", plan.num_appended, " new, ",
        plan.num_replaced, " copy-on-write) for tokens [", first_new_position, ", ",
        int64_t{first_new_position} + num_new_tokens, ") but ", num_free_blocks(), " are free"));
  }
  // Commit.
  std::vector<int32_t>& table = tables_[seq_id];
  const int32_t old_size = static_cast<int32_t>(table.size());
  for (int32_t i = plan.first_index; i < std::min(plan.end_index, old_size); ++i) {
    const int32_t old_block = table[i];
    if (allocator_.RefCount(old_block) <= 1) continue;
    const int32_t new_block = allocator_.Allocate();
    // Only a block holding tokens before the range has anything worth copying.
    if (int64_t{i} * block_size_ < first_new_position) copies->push_back({old_block, new_block});
    replacements->push_back({i, new_block});
    allocator_.DecRef(old_block);  // refcount was > 1: it stays allocated
    table[i] = new_block;
  }
  for (int32_t i = 0; i < plan.num_appended; ++i) {
    table.push_back(allocator_.Allocate());
    new_blocks->push_back(table.back());
  }
  return absl::OkStatus();
}

void BlockManager::Fork(uint64_t parent_seq_id, uint64_t child_seq_id) {
  PAGEDLLM_CHECK(!tables_.contains(child_seq_id), "fork into sequence ", child_seq_id,
                 " which already has a block table");
  std::vector<int32_t> child_table = table(parent_seq_id);
  for (int32_t block_id : child_table) allocator_.IncRef(block_id);
  tables_.emplace(child_seq_id, std::move(child_table));
}

void BlockManager::Free(uint64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  const std::vector<int32_t>& table = it->second;
  // Last block first, so that a later allocation reuses the head of this table first.
  for (auto block = table.rbegin(); block != table.rend(); ++block) allocator_.DecRef(*block);
  tables_.erase(it);
}

void BlockManager::CheckInvariants() const {
  allocator_.CheckInvariants();
  std::vector<int32_t> holders(num_total_blocks(), 0);
  for (const auto& [seq_id, table] : tables_) {
    for (int32_t block_id : table) {
      PAGEDLLM_CHECK(block_id >= 0 && block_id < num_total_blocks(), "sequence ", seq_id,
                     " holds block id ", block_id, " out of range [0, ", num_total_blocks(), ")");
      ++holders[block_id];
    }
  }
  for (int32_t id = 0; id < num_total_blocks(); ++id) {
    PAGEDLLM_CHECK(holders[id] == allocator_.RefCount(id), "block ", id, " has refcount ",
                   allocator_.RefCount(id), " but ", holders[id], " table entries hold it");
  }
}

}  // namespace pagedllm::coordinator
