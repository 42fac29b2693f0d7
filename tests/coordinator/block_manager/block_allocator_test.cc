#include "coordinator/block_manager/block_allocator.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"

namespace pagedllm::coordinator {
namespace {

TEST(BlockAllocatorTest, FreshAllocatorHandsOutIdsInOrder) {
  BlockAllocator allocator(4);
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.num_total(), 4);
  EXPECT_EQ(allocator.num_free(), 4);
  for (int32_t expected = 0; expected < 4; ++expected) {
    EXPECT_EQ(allocator.Allocate(), expected);
    allocator.CheckInvariants();
    EXPECT_EQ(allocator.RefCount(expected), 1);
  }
  EXPECT_EQ(allocator.num_free(), 0);
}

TEST(BlockAllocatorTest, DecRefToZeroReturnsIdAndFreedIdIsReusedFirst) {
  BlockAllocator allocator(3);
  const int32_t a = allocator.Allocate();
  const int32_t b = allocator.Allocate();
  allocator.CheckInvariants();
  EXPECT_TRUE(allocator.DecRef(a));
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.RefCount(a), 0);
  EXPECT_EQ(allocator.num_free(), 2);
  EXPECT_EQ(allocator.Allocate(), a);  // stack: last freed, first reused
  allocator.CheckInvariants();
  EXPECT_TRUE(allocator.DecRef(b));
  EXPECT_TRUE(allocator.DecRef(a));
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.num_free(), 3);
}

TEST(BlockAllocatorTest, SharedIdStaysAllocatedUntilLastReference) {
  BlockAllocator allocator(2);
  const int32_t id = allocator.Allocate();
  allocator.IncRef(id);
  allocator.CheckInvariants();
  allocator.IncRef(id);
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.RefCount(id), 3);
  EXPECT_FALSE(allocator.DecRef(id));
  allocator.CheckInvariants();
  EXPECT_FALSE(allocator.DecRef(id));
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.num_free(), 1);
  EXPECT_TRUE(allocator.DecRef(id));
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.num_free(), 2);
}

TEST(BlockAllocatorTest, AllocatingEveryIdGivesEachOnce) {
  BlockAllocator allocator(100);
  std::vector<int32_t> ids;
  while (allocator.num_free() > 0) ids.push_back(allocator.Allocate());
  allocator.CheckInvariants();
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.size(), 100u);
  for (int32_t i = 0; i < 100; ++i) EXPECT_EQ(ids[i], i);
  for (int32_t id : ids) allocator.DecRef(id);
  allocator.CheckInvariants();
  EXPECT_EQ(allocator.num_free(), 100);
}

// Forwards every mutation to a BlockAllocator and checks its invariants right after.
class CheckedAllocator {
 public:
  explicit CheckedAllocator(int32_t num_blocks) : allocator_(num_blocks) {
    allocator_.CheckInvariants();
  }
  int32_t Allocate() {
    const int32_t id = allocator_.Allocate();
    allocator_.CheckInvariants();
    return id;
  }
  void IncRef(int32_t id) {
    allocator_.IncRef(id);
    allocator_.CheckInvariants();
  }
  bool DecRef(int32_t id) {
    const bool freed = allocator_.DecRef(id);
    allocator_.CheckInvariants();
    return freed;
  }
  bool SetHash(int32_t id, uint64_t hash) {
    const bool set = allocator_.SetHash(id, hash);
    allocator_.CheckInvariants();
    return set;
  }
  const BlockAllocator* operator->() const { return &allocator_; }

 private:
  BlockAllocator allocator_;
};

// Allocates `n` blocks and gives block i the hash 100 + i.
std::vector<int32_t> AllocateHashed(CheckedAllocator& allocator, int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) {
    ids.push_back(allocator.Allocate());
    EXPECT_TRUE(allocator.SetHash(ids.back(), 100 + static_cast<uint64_t>(i)));
  }
  return ids;
}

TEST(BlockAllocatorTest, FreedHashedBlockBecomesEvictableAndStaysFindable) {
  CheckedAllocator allocator(3);
  const int32_t id = allocator.Allocate();
  ASSERT_TRUE(allocator.SetHash(id, 42));
  EXPECT_TRUE(allocator->HasHash(id));
  EXPECT_EQ(allocator->Lookup(42), id);
  EXPECT_EQ(allocator->Lookup(43), -1);
  EXPECT_EQ(allocator->num_evictable(), 0);
  EXPECT_EQ(allocator->num_free(), 2);

  EXPECT_TRUE(allocator.DecRef(id));
  EXPECT_EQ(allocator->RefCount(id), 0);
  EXPECT_EQ(allocator->num_evictable(), 1);
  EXPECT_EQ(allocator->num_free(), 3);  // evictable counts as free
  EXPECT_EQ(allocator->Lookup(42), id);
  EXPECT_TRUE(allocator->HasHash(id));
  EXPECT_EQ(allocator->num_evictions(), 0);
}

TEST(BlockAllocatorTest, IncRefRevivesAnEvictableBlockWithItsHash) {
  CheckedAllocator allocator(2);
  const int32_t id = allocator.Allocate();
  ASSERT_TRUE(allocator.SetHash(id, 7));
  allocator.DecRef(id);
  allocator.IncRef(id);
  EXPECT_EQ(allocator->RefCount(id), 1);
  EXPECT_EQ(allocator->num_evictable(), 0);
  EXPECT_EQ(allocator->num_free(), 1);
  EXPECT_EQ(allocator->Lookup(7), id);
  // A second reference, then both dropped: evictable again, not free.
  allocator.IncRef(id);
  EXPECT_FALSE(allocator.DecRef(id));
  EXPECT_EQ(allocator->num_evictable(), 0);
  EXPECT_TRUE(allocator.DecRef(id));
  EXPECT_EQ(allocator->num_evictable(), 1);
  // The revived block is never handed out while a free id is left.
  EXPECT_NE(allocator.Allocate(), id);
  EXPECT_EQ(allocator->Lookup(7), id);
}

TEST(BlockAllocatorTest, AllocateTakesFreeIdsBeforeEvicting) {
  CheckedAllocator allocator(4);
  const std::vector<int32_t> hashed = AllocateHashed(allocator, 2);  // ids 0 1
  for (int32_t id : hashed) allocator.DecRef(id);
  ASSERT_EQ(allocator->num_free(), 4);
  ASSERT_EQ(allocator->num_evictable(), 2);
  EXPECT_EQ(allocator.Allocate(), 2);
  EXPECT_EQ(allocator.Allocate(), 3);
  EXPECT_EQ(allocator->num_evictions(), 0);
  EXPECT_EQ(allocator->Lookup(100), 0);
  EXPECT_EQ(allocator->Lookup(101), 1);
  EXPECT_EQ(allocator->num_free(), 2);
  EXPECT_EQ(allocator->num_evictable(), 2);
}

TEST(BlockAllocatorTest, EvictsLeastRecentlyFreedFirstAndDropsItsHash) {
  CheckedAllocator allocator(3);
  const std::vector<int32_t> ids = AllocateHashed(allocator, 3);  // hashes 100 101 102
  // Freed in the order 1, 0, 2.
  allocator.DecRef(ids[1]);
  allocator.DecRef(ids[0]);
  allocator.DecRef(ids[2]);
  ASSERT_EQ(allocator->num_evictable(), 3);

  EXPECT_EQ(allocator.Allocate(), ids[1]);
  EXPECT_EQ(allocator->num_evictions(), 1);
  EXPECT_EQ(allocator->Lookup(101), -1);
  EXPECT_FALSE(allocator->HasHash(ids[1]));
  EXPECT_EQ(allocator->RefCount(ids[1]), 1);
  EXPECT_EQ(allocator->num_evictable(), 2);
  EXPECT_EQ(allocator->num_free(), 2);

  // Reviving block 0 takes it off the eviction order: 2 goes next.
  allocator.IncRef(ids[0]);
  EXPECT_EQ(allocator.Allocate(), ids[2]);
  EXPECT_EQ(allocator->Lookup(102), -1);
  EXPECT_EQ(allocator->Lookup(100), ids[0]);
  EXPECT_EQ(allocator->num_evictions(), 2);
  EXPECT_EQ(allocator->num_free(), 0);

  // Freed again, 0 is the only evictable block; an evicted block freed without a hash is free.
  allocator.DecRef(ids[0]);
  allocator.DecRef(ids[1]);
  EXPECT_EQ(allocator->num_evictable(), 1);
  EXPECT_EQ(allocator.Allocate(), ids[1]);  // the free stack first
  EXPECT_EQ(allocator.Allocate(), ids[0]);  // then the evictable one
  EXPECT_EQ(allocator->Lookup(100), -1);
  EXPECT_EQ(allocator->num_evictions(), 3);
}

TEST(BlockAllocatorTest, EvictionOrderFollowsFreeOrderNotIdOrHash) {
  CheckedAllocator allocator(6);
  const std::vector<int32_t> ids = AllocateHashed(allocator, 6);
  const std::vector<int> free_order = {4, 0, 5, 2, 1, 3};
  for (int i : free_order) {
    allocator.DecRef(ids[i]);
  }
  for (int i : free_order) {
    EXPECT_EQ(allocator.Allocate(), ids[i]);
    EXPECT_EQ(allocator->Lookup(100 + static_cast<uint64_t>(i)), -1);
  }
  EXPECT_EQ(allocator->num_evictions(), 6);
  EXPECT_EQ(allocator->num_evictable(), 0);
}

TEST(BlockAllocatorTest, EvictedBlockHashIsForgottenAndCanBeSetAgain) {
  CheckedAllocator allocator(2);
  const std::vector<int32_t> ids = AllocateHashed(allocator, 2);  // 0: 100, 1: 101
  allocator.DecRef(ids[0]);
  const int32_t evicted = allocator.Allocate();
  ASSERT_EQ(evicted, ids[0]);
  EXPECT_FALSE(allocator->HasHash(evicted));
  EXPECT_FALSE(allocator.SetHash(evicted, 101));  // still block 1's
  EXPECT_TRUE(allocator.SetHash(evicted, 100));   // dropped by the eviction: free to take
  EXPECT_EQ(allocator->Lookup(100), evicted);
  EXPECT_EQ(allocator->Lookup(101), ids[1]);
}

TEST(BlockAllocatorTest, SetHashRefusesADuplicateHash) {
  CheckedAllocator allocator(3);
  const int32_t a = allocator.Allocate();
  const int32_t b = allocator.Allocate();
  ASSERT_TRUE(allocator.SetHash(a, 5));
  EXPECT_FALSE(allocator.SetHash(b, 5));
  EXPECT_FALSE(allocator->HasHash(b));
  EXPECT_EQ(allocator->Lookup(5), a);
  // b without a hash goes to the free stack, not the evictable list.
  EXPECT_TRUE(allocator.DecRef(b));
  EXPECT_EQ(allocator->num_evictable(), 0);
  // Also refused while the holder is evictable.
  allocator.DecRef(a);
  const int32_t c = allocator.Allocate();
  ASSERT_NE(c, a);
  EXPECT_FALSE(allocator.SetHash(c, 5));
  EXPECT_EQ(allocator->Lookup(5), a);
  EXPECT_TRUE(allocator.SetHash(c, 6));
}

TEST(BlockAllocatorTest, NumFreeCountsFreeAndEvictable) {
  CheckedAllocator allocator(5);
  const std::vector<int32_t> hashed = AllocateHashed(allocator, 3);
  const int32_t plain = allocator.Allocate();
  EXPECT_EQ(allocator->num_free(), 1);
  allocator.DecRef(hashed[0]);
  allocator.DecRef(hashed[2]);
  allocator.DecRef(plain);
  EXPECT_EQ(allocator->num_evictable(), 2);
  EXPECT_EQ(allocator->num_free(), 4);
  // Every one of them can be handed out.
  for (int i = 0; i < 4; ++i) {
    allocator.Allocate();
  }
  EXPECT_EQ(allocator->num_free(), 0);
  EXPECT_EQ(allocator->num_evictable(), 0);
  EXPECT_EQ(allocator->num_evictions(), 2);
}

using BlockAllocatorDeathTest = ::testing::Test;

TEST_F(BlockAllocatorDeathTest, AllocateWithNoneFreeAborts) {
  BlockAllocator allocator(1);
  allocator.Allocate();
  EXPECT_DEATH(allocator.Allocate(), "no free block among 1");
}

TEST_F(BlockAllocatorDeathTest, DoubleFreeAbortsNamingTheBlock) {
  BlockAllocator allocator(2);
  allocator.Allocate();
  const int32_t id = allocator.Allocate();
  allocator.DecRef(id);
  EXPECT_DEATH(allocator.DecRef(id), "DecRef of free block 1");
}

TEST_F(BlockAllocatorDeathTest, IncRefOfFreeBlockAborts) {
  BlockAllocator allocator(2);
  EXPECT_DEATH(allocator.IncRef(1), "IncRef of free block 1");
}

TEST_F(BlockAllocatorDeathTest, OutOfRangeIdAborts) {
  BlockAllocator allocator(2);
  EXPECT_DEATH(allocator.RefCount(2), "block id 2 out of range \\[0, 2\\)");
  EXPECT_DEATH(allocator.DecRef(-1), "block id -1 out of range");
}

TEST_F(BlockAllocatorDeathTest, EmptyPoolAborts) {
  EXPECT_DEATH(BlockAllocator allocator(0), "num_blocks must be positive, got 0");
}

TEST_F(BlockAllocatorDeathTest, SetHashOfAFreeOrHashedBlockAborts) {
  BlockAllocator allocator(2);
  EXPECT_DEATH(allocator.SetHash(1, 9), "SetHash of block 1 \\(refcount 0, has hash 0\\)");
  const int32_t id = allocator.Allocate();
  ASSERT_TRUE(allocator.SetHash(id, 9));
  EXPECT_DEATH(allocator.SetHash(id, 10), "SetHash of block 0 \\(refcount 1, has hash 1\\)");
}

TEST_F(BlockAllocatorDeathTest, DecRefOfAnEvictableBlockAborts) {
  BlockAllocator allocator(2);
  const int32_t id = allocator.Allocate();
  ASSERT_TRUE(allocator.SetHash(id, 9));
  allocator.DecRef(id);
  EXPECT_DEATH(allocator.DecRef(id), "DecRef of free block 0");
}

}  // namespace
}  // namespace pagedllm::coordinator
