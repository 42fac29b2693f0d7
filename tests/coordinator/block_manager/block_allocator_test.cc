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

}  // namespace
}  // namespace pagedllm::coordinator
