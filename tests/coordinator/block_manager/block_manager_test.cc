#include "coordinator/block_manager/block_manager.h"

#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

BlockManagerConfig Config(int32_t num_blocks, int32_t block_size, double watermark = 0.0) {
  BlockManagerConfig config;
  config.num_blocks = num_blocks;
  config.block_size = block_size;
  config.watermark = watermark;
  return config;
}

// What one AllocateSlots call reported.
struct SlotChanges {
  std::vector<int32_t> new_blocks;
  std::vector<BlockReplacement> replacements;
  std::vector<BlockCopy> copies;
};

// Forwards every mutation to a BlockManager and checks its invariants right after.
class CheckedBlockManager {
 public:
  explicit CheckedBlockManager(const BlockManagerConfig& config) : manager_(config) {
    manager_.CheckInvariants();
  }

  absl::Status EnsureCapacity(uint64_t seq_id, int num_tokens, std::vector<int32_t>* blocks) {
    absl::Status status = manager_.EnsureCapacity(seq_id, num_tokens, blocks);
    manager_.CheckInvariants();
    return status;
  }
  absl::Status AllocateSlots(uint64_t seq_id, int first, int count, SlotChanges* changes) {
    absl::Status status = manager_.AllocateSlots(seq_id, first, count, &changes->new_blocks,
                                                 &changes->replacements, &changes->copies);
    manager_.CheckInvariants();
    return status;
  }
  void Fork(uint64_t parent, uint64_t child) {
    manager_.Fork(parent, child);
    manager_.CheckInvariants();
  }
  void Free(uint64_t seq_id) {
    manager_.Free(seq_id);
    manager_.CheckInvariants();
  }
  const BlockManager& operator*() const { return manager_; }
  const BlockManager* operator->() const { return &manager_; }

 private:
  BlockManager manager_;
};

TEST(BlockManagerTest, EnsureCapacityGrowsTableToCeilOfTokens) {
  CheckedBlockManager manager(Config(8, 4));
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 0, &added).ok());
  EXPECT_THAT(added, IsEmpty());
  EXPECT_TRUE(manager->HasTable(1));
  ASSERT_TRUE(manager.EnsureCapacity(1, 1, &added).ok());
  EXPECT_THAT(added, ElementsAre(0));
  ASSERT_TRUE(manager.EnsureCapacity(1, 4, &added).ok());  // still one block
  EXPECT_THAT(added, ElementsAre(0));
  ASSERT_TRUE(manager.EnsureCapacity(1, 9, &added).ok());  // ceil(9 / 4) = 3
  EXPECT_THAT(added, ElementsAre(0, 1, 2));
  ASSERT_TRUE(manager.EnsureCapacity(1, 2, &added).ok());  // never shrinks
  EXPECT_THAT(manager->table(1), ElementsAre(0, 1, 2));
  EXPECT_EQ(manager->num_free_blocks(), 5);
  EXPECT_DOUBLE_EQ(manager->usage(), 3.0 / 8.0);
}

TEST(BlockManagerTest, EnsureCapacityIsAllOrNothing) {
  CheckedBlockManager manager(Config(4, 4));
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 8, &added).ok());
  added.clear();
  const absl::Status status = manager.EnsureCapacity(2, 12, &added);  // 3 blocks, 2 free
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("2 are free"));
  EXPECT_THAT(added, IsEmpty());
  EXPECT_FALSE(manager->HasTable(2));
  EXPECT_EQ(manager->num_free_blocks(), 2);
  ASSERT_TRUE(manager.EnsureCapacity(2, 8, &added).ok());
  EXPECT_EQ(manager->num_free_blocks(), 0);
}

TEST(BlockManagerTest, AllocateSlotsAppendsOnlyTheBlocksTheRangeReaches) {
  CheckedBlockManager manager(Config(8, 4));
  SlotChanges prefill;
  ASSERT_TRUE(manager.AllocateSlots(7, 0, 6, &prefill).ok());  // tokens [0, 6)
  EXPECT_THAT(prefill.new_blocks, ElementsAre(0, 1));
  EXPECT_THAT(prefill.replacements, IsEmpty());
  EXPECT_THAT(prefill.copies, IsEmpty());
  SlotChanges decode;
  ASSERT_TRUE(manager.AllocateSlots(7, 6, 1, &decode).ok());  // position 6: block 1 has room
  EXPECT_THAT(decode.new_blocks, IsEmpty());
  ASSERT_TRUE(manager.AllocateSlots(7, 7, 1, &decode).ok());
  EXPECT_THAT(decode.new_blocks, IsEmpty());
  ASSERT_TRUE(manager.AllocateSlots(7, 8, 1, &decode).ok());  // position 8 opens block 2
  EXPECT_THAT(decode.new_blocks, ElementsAre(2));
  EXPECT_THAT(manager->table(7), ElementsAre(0, 1, 2));
  EXPECT_EQ(manager->NumBlocksNeeded(7, 9, 8), 2);   // [9, 17) reaches block 4
  EXPECT_EQ(manager->NumBlocksNeeded(99, 0, 1), 1);  // no table counts as empty
}

TEST(BlockManagerTest, CanAllocateSaysOkLaterOrNever) {
  // 10 blocks of 4 tokens, watermark 20% = 2 blocks: at most 8 blocks = 32 tokens per sequence.
  CheckedBlockManager manager(Config(10, 4, 0.2));
  EXPECT_EQ(manager->watermark_blocks(), 2);
  EXPECT_EQ(manager->CanAllocate(32), AllocationCheck::kOk);
  EXPECT_EQ(manager->CanAllocate(33), AllocationCheck::kNever);
  EXPECT_EQ(manager->CanAllocate(40), AllocationCheck::kNever);
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 20, &added).ok());       // 5 blocks, 5 free
  EXPECT_EQ(manager->CanAllocate(12), AllocationCheck::kOk);     // 3 blocks, 2 left
  EXPECT_EQ(manager->CanAllocate(13), AllocationCheck::kLater);  // 4 blocks, 1 left
  EXPECT_EQ(manager->CanAllocate(32), AllocationCheck::kLater);
  EXPECT_EQ(manager->CanAllocate(33), AllocationCheck::kNever);
  manager.Free(1);
  EXPECT_EQ(manager->CanAllocate(13), AllocationCheck::kOk);
  EXPECT_STREQ(AllocationCheckName(AllocationCheck::kLater), "LATER");
}

TEST(BlockManagerTest, ForkSharesEveryBlock) {
  CheckedBlockManager manager(Config(8, 4));
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 10, &added).ok());
  manager.Fork(1, 2);
  manager.Fork(2, 3);
  EXPECT_EQ(manager->table(2), manager->table(1));
  EXPECT_EQ(manager->table(3), manager->table(1));
  for (int32_t block : manager->table(1)) EXPECT_EQ(manager->RefCount(block), 3);
  EXPECT_EQ(manager->num_free_blocks(), 5);
  manager.Free(1);
  manager.Free(3);
  EXPECT_EQ(manager->num_free_blocks(), 5);  // 2 still holds them
  for (int32_t block : manager->table(2)) EXPECT_EQ(manager->RefCount(block), 1);
  manager.Free(2);
  EXPECT_EQ(manager->num_free_blocks(), 8);
}

TEST(BlockManagerTest, WritingIntoSharedLastBlockCopiesIt) {
  CheckedBlockManager manager(Config(8, 4));
  SlotChanges changes;
  ASSERT_TRUE(manager.AllocateSlots(1, 0, 6, &changes).ok());  // parent: tokens [0, 6)
  ASSERT_THAT(manager->table(1), ElementsAre(0, 1));
  manager.Fork(1, 2);

  // The child writes position 6, inside shared block 1 that holds tokens 4 and 5.
  SlotChanges child;
  ASSERT_TRUE(manager.AllocateSlots(2, 6, 1, &child).ok());
  EXPECT_THAT(child.new_blocks, IsEmpty());
  EXPECT_THAT(child.replacements, ElementsAre(BlockReplacement{1, 2}));
  EXPECT_THAT(child.copies, ElementsAre(BlockCopy{1, 2}));
  EXPECT_THAT(manager->table(2), ElementsAre(0, 2));
  EXPECT_THAT(manager->table(1), ElementsAre(0, 1));
  EXPECT_EQ(manager->RefCount(0), 2);  // the full block stays shared
  EXPECT_EQ(manager->RefCount(1), 1);
  EXPECT_EQ(manager->RefCount(2), 1);

  // The parent is now the only holder of block 1: it writes in place.
  SlotChanges parent;
  ASSERT_TRUE(manager.AllocateSlots(1, 6, 1, &parent).ok());
  EXPECT_THAT(parent.new_blocks, IsEmpty());
  EXPECT_THAT(parent.replacements, IsEmpty());
  EXPECT_THAT(parent.copies, IsEmpty());
}

TEST(BlockManagerTest, ForkAtBlockBoundaryNeedsNoCopy) {
  CheckedBlockManager manager(Config(8, 4));
  SlotChanges changes;
  ASSERT_TRUE(manager.AllocateSlots(1, 0, 8, &changes).ok());
  manager.Fork(1, 2);
  SlotChanges child;
  ASSERT_TRUE(manager.AllocateSlots(2, 8, 3, &child).ok());
  EXPECT_THAT(child.new_blocks, ElementsAre(2));
  EXPECT_THAT(child.replacements, IsEmpty());
  EXPECT_THAT(child.copies, IsEmpty());
}

TEST(BlockManagerTest, SharedBlockWithNothingBeforeTheRangeIsReplacedWithoutCopy) {
  CheckedBlockManager manager(Config(8, 4));
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 12, &added).ok());  // blocks 0 1 2, only 8 tokens written
  manager.Fork(1, 2);
  SlotChanges child;
  ASSERT_TRUE(manager.AllocateSlots(2, 8, 2, &child).ok());  // writes into shared block 2
  EXPECT_THAT(child.replacements, ElementsAre(BlockReplacement{2, 3}));
  EXPECT_THAT(child.copies, IsEmpty());  // block 2 holds no token before position 8
}

TEST(BlockManagerTest, AllocateSlotsIsAllOrNothingWhenCopyAndAppendDoNotFit) {
  CheckedBlockManager manager(Config(4, 4));
  SlotChanges changes;
  ASSERT_TRUE(manager.AllocateSlots(1, 0, 6, &changes).ok());  // blocks 0 1
  manager.Fork(1, 2);
  ASSERT_TRUE(manager.AllocateSlots(3, 0, 4, &changes).ok());  // block 2; one left
  // Child writes [6, 10): copy of block 1 plus a new block = 2 blocks, 1 free.
  SlotChanges child;
  EXPECT_EQ(manager->NumBlocksNeeded(2, 6, 4), 2);
  const absl::Status status = manager.AllocateSlots(2, 6, 4, &child);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("needs 2 blocks (1 new, 1 copy-on-write)"));
  EXPECT_THAT(child.new_blocks, IsEmpty());
  EXPECT_THAT(child.replacements, IsEmpty());
  EXPECT_THAT(child.copies, IsEmpty());
  EXPECT_THAT(manager->table(2), ElementsAre(0, 1));
  EXPECT_EQ(manager->RefCount(1), 2);
  EXPECT_EQ(manager->num_free_blocks(), 1);
  // One token fits: only the copy is needed.
  ASSERT_TRUE(manager.AllocateSlots(2, 6, 1, &child).ok());
  EXPECT_THAT(child.copies, ElementsAre(BlockCopy{1, 3}));
  EXPECT_EQ(manager->num_free_blocks(), 0);
}

TEST(BlockManagerTest, FreeOfUnknownSequenceIsANoOp) {
  CheckedBlockManager manager(Config(2, 4));
  manager.Free(42);
  EXPECT_EQ(manager->num_free_blocks(), 2);
}

// Random appends, forks and frees over a tiny pool, with a simulated KV cache that stores
// token values: copies are applied before writes, as the workers do, and every sequence must
// read back exactly the tokens it wrote.
TEST(BlockManagerTest, RandomForkAppendFreeKeepsEverySequencesTokens) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    // Block size 1 would never share a partly filled block, so nothing to copy on write.
    const int32_t block_size = std::uniform_int_distribution<int>(2, 5)(rng);
    const int32_t num_blocks = std::uniform_int_distribution<int>(4, 24)(rng);
    CheckedBlockManager manager(Config(num_blocks, block_size));
    std::vector<std::vector<int32_t>> kv(num_blocks, std::vector<int32_t>(block_size, -1));
    std::map<uint64_t, std::vector<int32_t>> tokens;  // what each sequence wrote
    uint64_t next_seq = 1;
    int num_cow = 0;
    int num_exhausted = 0;
    for (int op = 0; op < 2000; ++op) {
      int choice = std::uniform_int_distribution<int>(0, 19)(rng);
      if (manager->num_free_blocks() == 0 && choice < 12) choice = 9;  // make room
      if (tokens.empty() || choice < 3) {
        tokens[next_seq++];  // a new, empty sequence
      } else {
        auto it = tokens.begin();
        std::advance(it, std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng));
        const uint64_t seq = it->first;
        if (choice < 7) {
          if (!manager->HasTable(seq)) continue;
          manager.Fork(seq, next_seq);
          tokens[next_seq++] = it->second;
        } else if (choice < 10) {
          manager.Free(seq);
          tokens.erase(it);
        } else {
          std::vector<int32_t>& written = it->second;
          const int first = static_cast<int>(written.size());
          const int count = std::uniform_int_distribution<int>(1, 2 * block_size)(rng);
          SlotChanges changes;
          const int32_t free_before = manager->num_free_blocks();
          const absl::Status status = manager.AllocateSlots(seq, first, count, &changes);
          if (!status.ok()) {
            ++num_exhausted;
            ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
            ASSERT_EQ(manager->num_free_blocks(), free_before);
            continue;
          }
          num_cow += static_cast<int>(changes.replacements.size());
          for (const BlockCopy& copy : changes.copies)
            kv[copy.dst_block_id] = kv[copy.src_block_id];
          const std::vector<int32_t>& table = manager->table(seq);
          for (int p = first; p < first + count; ++p) {
            const int32_t value = static_cast<int32_t>(seq * 100000 + p);
            kv[table[p / block_size]][p % block_size] = value;
            written.push_back(value);
          }
        }
      }
      // Every sequence reads back what it wrote.
      for (const auto& [seq, written] : tokens) {
        if (written.empty()) continue;
        const std::vector<int32_t>& table = manager->table(seq);
        for (size_t p = 0; p < written.size(); ++p) {
          ASSERT_EQ(kv[table[p / block_size]][p % block_size], written[p])
              << "sequence " << seq << " position " << p;
        }
      }
    }
    EXPECT_GT(num_cow, 0);
    EXPECT_GT(num_exhausted, 0);
    for (const auto& [seq, written] : tokens) manager.Free(seq);
    EXPECT_EQ(manager->num_free_blocks(), num_blocks);
    EXPECT_EQ(manager->num_tables(), 0);
  }
}

using BlockManagerDeathTest = ::testing::Test;

TEST_F(BlockManagerDeathTest, ForkIntoExistingTableAborts) {
  BlockManager manager(Config(4, 4));
  std::vector<int32_t> added;
  ASSERT_TRUE(manager.EnsureCapacity(1, 4, &added).ok());
  ASSERT_TRUE(manager.EnsureCapacity(2, 4, &added).ok());
  EXPECT_DEATH(manager.Fork(1, 2), "fork into sequence 2 which already has a block table");
}

TEST_F(BlockManagerDeathTest, TableOfUnknownSequenceAborts) {
  BlockManager manager(Config(4, 4));
  EXPECT_DEATH(manager.table(5), "sequence 5 has no block table");
}

}  // namespace
}  // namespace pagedllm::coordinator
