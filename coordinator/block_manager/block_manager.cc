#include "coordinator/block_manager/block_manager.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
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
      num_host_blocks_(config.num_host_blocks),
      allocator_(config.num_blocks) {
  PAGEDLLM_CHECK(block_size_ > 0, "block_size must be positive, got ", block_size_);
  PAGEDLLM_CHECK(num_host_blocks_ >= 0, "num_host_blocks must be >= 0, got ", num_host_blocks_);
  if (num_host_blocks_ > 0) host_allocator_ = std::make_unique<BlockAllocator>(num_host_blocks_);
}

int32_t BlockManager::num_free_host_blocks() const {
  return host_allocator_ == nullptr ? 0 : host_allocator_->num_free();
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

namespace {

const std::vector<int32_t>& EmptyTable() {
  static const std::vector<int32_t>* const kEmpty = new std::vector<int32_t>();
  return *kEmpty;
}

}  // namespace

const std::vector<int32_t>& BlockManager::TableOrEmpty(uint64_t seq_id) const {
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? EmptyTable() : it->second;
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
  plan.num_appended = std::max(0, plan.end_index - static_cast<int32_t>(table.size()));
  return plan;
}

int32_t BlockManager::NumBlocksNeeded(absl::Span<const SlotRequest> requests) const {
  int32_t needed = 0;
  // References each shared block still has, as the writers before it in the list left it.
  absl::flat_hash_map<int32_t, int32_t> remaining;
  for (const SlotRequest& request : requests) {
    const std::vector<int32_t>& table = TableOrEmpty(request.seq_id);
    const SlotPlan plan = PlanSlots(table, request.first_position, request.num_tokens);
    needed += plan.num_appended;
    const int32_t written_end = std::min<int32_t>(plan.end_index, table.size());
    for (int32_t i = plan.first_index; i < written_end; ++i) {
      // A private block is written in place (the common case: no map entry, no allocation).
      if (allocator_.RefCount(table[i]) <= 1) continue;
      auto [it, inserted] = remaining.try_emplace(table[i], 0);
      if (inserted) it->second = allocator_.RefCount(table[i]);
      if (it->second > 1) {
        ++needed;  // copied; the shared block loses this reference
        --it->second;
      }
    }
  }
  return needed;
}

bool BlockManager::SlotsFit(absl::Span<const SlotRequest> requests) const {
  // A request appends or copies only entries of its table up to its last written one.
  int64_t bound = 0;
  for (const SlotRequest& request : requests) {
    if (request.num_tokens > 0) {
      bound += NumBlocksForTokens(int64_t{request.first_position} + request.num_tokens);
    }
  }
  return bound <= num_free_blocks() || NumBlocksNeeded(requests) <= num_free_blocks();
}

absl::Status BlockManager::AllocateSlots(uint64_t seq_id, int first_new_position,
                                         int num_new_tokens, std::vector<int32_t>* new_blocks,
                                         std::vector<BlockReplacement>* replacements,
                                         std::vector<BlockCopy>* copies) {
  // Plan. This runs for every scheduled sequence every step: one lookup of the table, and the
  // general count (NumBlocksNeeded) only when the range writes into a shared block.
  auto it = tables_.find(seq_id);
  const std::vector<int32_t>& current = it == tables_.end() ? EmptyTable() : it->second;
  const SlotPlan plan = PlanSlots(current, first_new_position, num_new_tokens);
  const int32_t old_size = static_cast<int32_t>(current.size());
  bool writes_shared = false;
  for (int32_t i = plan.first_index; i < std::min(plan.end_index, old_size); ++i) {
    writes_shared = writes_shared || allocator_.RefCount(current[i]) > 1;
  }
  const SlotRequest request{seq_id, first_new_position, num_new_tokens};
  const int32_t needed =
      writes_shared ? NumBlocksNeeded(absl::MakeConstSpan(&request, 1)) : plan.num_appended;
  if (needed > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sequence ", seq_id, " needs ", needed, " blocks for tokens [", first_new_position, ", ",
        int64_t{first_new_position} + num_new_tokens, ") but ", num_free_blocks(), " are free"));
  }
  // Commit.
  std::vector<int32_t>& table = it == tables_.end() ? tables_[seq_id] : it->second;
  for (int32_t i = plan.first_index; writes_shared && i < std::min(plan.end_index, old_size); ++i) {
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
  PAGEDLLM_CHECK(!tables_.contains(child_seq_id) && !swapped_tables_.contains(child_seq_id),
                 "fork into sequence ", child_seq_id, " which already has a block table");
  std::vector<int32_t> child_table = table(parent_seq_id);
  for (int32_t block_id : child_table) allocator_.IncRef(block_id);
  tables_.emplace(child_seq_id, std::move(child_table));
}

void BlockManager::Free(uint64_t seq_id) {
  if (auto it = tables_.find(seq_id); it != tables_.end()) {
    const std::vector<int32_t>& table = it->second;
    // Last block first, so that a later allocation reuses the head of this table first (and
    // cached prefix blocks are evicted after the blocks that follow them).
    for (auto block = table.rbegin(); block != table.rend(); ++block) allocator_.DecRef(*block);
    tables_.erase(it);
  }
  if (auto it = swapped_tables_.find(seq_id); it != swapped_tables_.end()) {
    for (int32_t block : it->second) host_allocator_->DecRef(block);
    swapped_tables_.erase(it);
  }
}

BlockManager::CachedPrefix BlockManager::FindCachedPrefix(absl::Span<const uint64_t> block_hashes,
                                                          int max_blocks) const {
  CachedPrefix prefix;
  const int limit = std::min<int>(max_blocks, static_cast<int>(block_hashes.size()));
  for (int i = 0; i < limit; ++i) {
    const int32_t block = allocator_.Lookup(block_hashes[i]);
    if (block < 0) break;
    ++prefix.num_blocks;
    if (allocator_.RefCount(block) == 0) ++prefix.num_evictable;
  }
  return prefix;
}

void BlockManager::TakeCachedPrefix(uint64_t seq_id, absl::Span<const uint64_t> block_hashes,
                                    int32_t num_blocks) {
  PAGEDLLM_CHECK(!tables_.contains(seq_id) && !swapped_tables_.contains(seq_id), "sequence ",
                 seq_id, " already has a block table");
  PAGEDLLM_CHECK(num_blocks >= 0 && num_blocks <= static_cast<int32_t>(block_hashes.size()),
                 "TakeCachedPrefix of ", num_blocks, " blocks from ", block_hashes.size(),
                 " hashes");
  std::vector<int32_t>& table = tables_[seq_id];
  for (int32_t i = 0; i < num_blocks; ++i) {
    const int32_t block = allocator_.Lookup(block_hashes[i]);
    PAGEDLLM_CHECK(block >= 0, "sequence ", seq_id, ": cached block ", i, " is gone");
    allocator_.IncRef(block);
    table.push_back(block);
  }
}

void BlockManager::RegisterBlock(uint64_t seq_id, int32_t table_index, uint64_t hash) {
  const std::vector<int32_t>& seq_table = table(seq_id);
  PAGEDLLM_CHECK(table_index >= 0 && table_index < static_cast<int32_t>(seq_table.size()),
                 "sequence ", seq_id, ": RegisterBlock of entry ", table_index, " of ",
                 seq_table.size());
  const int32_t block = seq_table[table_index];
  if (!allocator_.HasHash(block)) allocator_.SetHash(block, hash);
}

namespace {

// Distinct ids over the tables of seq_ids, in first-seen order.
template <typename Tables>
std::vector<int32_t> DistinctBlocks(const Tables& tables, absl::Span<const uint64_t> seq_ids) {
  std::vector<int32_t> distinct;
  absl::flat_hash_set<int32_t> seen;
  for (uint64_t seq_id : seq_ids) {
    auto it = tables.find(seq_id);
    if (it == tables.end()) continue;
    for (int32_t block : it->second) {
      if (seen.insert(block).second) distinct.push_back(block);
    }
  }
  return distinct;
}

}  // namespace

int32_t BlockManager::NumBlocksToSwapOut(absl::Span<const uint64_t> seq_ids) const {
  return static_cast<int32_t>(DistinctBlocks(tables_, seq_ids).size());
}

int32_t BlockManager::NumBlocksToSwapIn(absl::Span<const uint64_t> seq_ids) const {
  return static_cast<int32_t>(DistinctBlocks(swapped_tables_, seq_ids).size());
}

absl::Status BlockManager::SwapOut(absl::Span<const uint64_t> seq_ids,
                                   std::vector<BlockSwap>* swaps) {
  const std::vector<int32_t> distinct = DistinctBlocks(tables_, seq_ids);
  if (static_cast<int32_t>(distinct.size()) > num_free_host_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("swapping out ", seq_ids.size(), " sequences needs ", distinct.size(),
                     " host blocks but ", num_free_host_blocks(), " are free"));
  }
  absl::flat_hash_map<int32_t, int32_t> host_of;
  for (int32_t device : distinct) {
    const int32_t host = host_allocator_->Allocate();
    host_of[device] = host;
    swaps->push_back({device, host});
  }
  absl::flat_hash_map<int32_t, bool> first_use;
  for (uint64_t seq_id : seq_ids) {
    auto it = tables_.find(seq_id);
    if (it == tables_.end()) continue;  // nothing computed yet: nothing to move
    if (it->second.empty()) {
      tables_.erase(it);  // an empty table moves nowhere; the sequence comes back without one
      continue;
    }
    std::vector<int32_t> host_table;
    host_table.reserve(it->second.size());
    for (int32_t device : it->second) {
      const int32_t host = host_of.at(device);
      // The first holder got refcount 1 from Allocate; every further one adds a reference.
      if (!first_use.emplace(host, true).second) host_allocator_->IncRef(host);
      host_table.push_back(host);
      allocator_.DecRef(device);
    }
    swapped_tables_.emplace(seq_id, std::move(host_table));
    tables_.erase(it);
  }
  return absl::OkStatus();
}

absl::Status BlockManager::SwapIn(absl::Span<const uint64_t> seq_ids,
                                  std::vector<BlockSwap>* swaps) {
  const std::vector<int32_t> distinct = DistinctBlocks(swapped_tables_, seq_ids);
  if (static_cast<int32_t>(distinct.size()) > num_free_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("swapping in ", seq_ids.size(), " sequences needs ", distinct.size(),
                     " blocks but ", num_free_blocks(), " are free"));
  }
  absl::flat_hash_map<int32_t, int32_t> device_of;
  for (int32_t host : distinct) {
    const int32_t device = allocator_.Allocate();
    device_of[host] = device;
    swaps->push_back({device, host});
  }
  absl::flat_hash_map<int32_t, bool> first_use;
  for (uint64_t seq_id : seq_ids) {
    auto it = swapped_tables_.find(seq_id);
    if (it == swapped_tables_.end()) continue;  // it had no blocks when swapped out
    std::vector<int32_t> device_table;
    device_table.reserve(it->second.size());
    for (int32_t host : it->second) {
      const int32_t device = device_of.at(host);
      if (!first_use.emplace(device, true).second) allocator_.IncRef(device);
      device_table.push_back(device);
      host_allocator_->DecRef(host);
    }
    tables_.emplace(seq_id, std::move(device_table));
    swapped_tables_.erase(it);
  }
  return absl::OkStatus();
}

void BlockManager::CheckInvariants() const {
  allocator_.CheckInvariants();
  std::vector<int32_t> holders(num_total_blocks(), 0);
  for (const auto& [seq_id, table] : tables_) {
    PAGEDLLM_CHECK(!swapped_tables_.contains(seq_id), "sequence ", seq_id,
                   " has a device and a swapped table");
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
  if (host_allocator_ == nullptr) {
    PAGEDLLM_CHECK(swapped_tables_.empty(), swapped_tables_.size(),
                   " swapped tables without swap space");
    return;
  }
  host_allocator_->CheckInvariants();
  std::vector<int32_t> host_holders(num_host_blocks_, 0);
  for (const auto& [seq_id, table] : swapped_tables_) {
    for (int32_t block_id : table) {
      PAGEDLLM_CHECK(block_id >= 0 && block_id < num_host_blocks_, "swapped sequence ", seq_id,
                     " holds host block ", block_id, " out of range [0, ", num_host_blocks_, ")");
      ++host_holders[block_id];
    }
  }
  for (int32_t id = 0; id < num_host_blocks_; ++id) {
    PAGEDLLM_CHECK(host_holders[id] == host_allocator_->RefCount(id), "host block ", id,
                   " has refcount ", host_allocator_->RefCount(id), " but ", host_holders[id],
                   " swapped table entries hold it");
  }
}

}  // namespace pagedllm::coordinator
