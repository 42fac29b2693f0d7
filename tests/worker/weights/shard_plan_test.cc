#include "parallel/shard_plan.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm::parallel {
namespace {

ModelDims Dims(int64_t heads, int64_t kv_heads, int64_t intermediate = 64, int64_t vocab = 100) {
  ModelDims dims;
  dims.hidden = 32;
  dims.intermediate = intermediate;
  dims.num_heads = heads;
  dims.num_kv_heads = kv_heads;
  dims.head_dim = 4;
  dims.vocab = vocab;
  return dims;
}

std::vector<ShardPlan> Plans(const ModelDims& dims, int tp) {
  std::vector<ShardPlan> plans;
  for (int rank = 0; rank < tp; ++rank) {
    auto plan = MakeShardPlan(dims, rank, tp);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (plan.ok()) plans.push_back(*plan);
  }
  return plans;
}

std::string ErrorOf(const ModelDims& dims, int rank, int tp) {
  auto plan = MakeShardPlan(dims, rank, tp);
  EXPECT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(plan.status().message());
}

TEST(ShardPlanTest, SingleRankOwnsEverything) {
  auto plan = MakeShardPlan(Dims(8, 4), 0, 1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->heads_local, 8);
  EXPECT_EQ(plan->head_begin, 0);
  EXPECT_EQ(plan->kv_heads_local, 4);
  EXPECT_EQ(plan->kv_head_begin, 0);
  EXPECT_EQ(plan->intermediate_local, 64);
  EXPECT_EQ(plan->vocab_begin, 0);
  EXPECT_EQ(plan->vocab_end, 100);
  EXPECT_EQ(plan->vocab_local, 100);
}

TEST(ShardPlanTest, MultiHeadAttention) {
  const auto plans = Plans(Dims(8, 8), 4);
  ASSERT_EQ(plans.size(), 4u);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(plans[r].heads_local, 2);
    EXPECT_EQ(plans[r].head_begin, 2 * r);
    EXPECT_EQ(plans[r].kv_heads_local, 2);
    EXPECT_EQ(plans[r].kv_head_begin, 2 * r);
    EXPECT_EQ(plans[r].kv_replicas, 1);
    EXPECT_EQ(plans[r].intermediate_local, 16);
    EXPECT_EQ(plans[r].intermediate_begin, 16 * r);
    EXPECT_EQ(plans[r].vocab_local, 25);
    EXPECT_EQ(plans[r].vocab_begin, 25 * r);
    EXPECT_EQ(plans[r].vocab_end, 25 * (r + 1));
  }
}

TEST(ShardPlanTest, GroupedQueryAttention) {
  const auto plans = Plans(Dims(8, 4), 2);
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[1].heads_local, 4);
  EXPECT_EQ(plans[1].head_begin, 4);
  EXPECT_EQ(plans[1].kv_heads_local, 2);
  EXPECT_EQ(plans[1].kv_head_begin, 2);
}

TEST(ShardPlanTest, MultiQueryAttentionReplicatesTheKvHead) {
  const auto plans = Plans(Dims(8, 1), 4);
  ASSERT_EQ(plans.size(), 4u);
  for (const ShardPlan& plan : plans) {
    EXPECT_EQ(plan.kv_heads_local, 1);
    EXPECT_EQ(plan.kv_head_begin, 0);
    EXPECT_EQ(plan.kv_replicas, 4);
    EXPECT_EQ(plan.heads_local, 2);
  }
}

TEST(ShardPlanTest, KvHeadsReplicatedOnConsecutiveRanks) {
  const auto plans = Plans(Dims(8, 2), 4);
  ASSERT_EQ(plans.size(), 4u);
  const int64_t expected[] = {0, 0, 1, 1};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(plans[r].kv_heads_local, 1);
    EXPECT_EQ(plans[r].kv_head_begin, expected[r]) << "rank " << r;
    EXPECT_EQ(plans[r].kv_replicas, 2);
  }
}

TEST(ShardPlanTest, VocabIsPaddedOnTheLastRank) {
  const auto plans = Plans(Dims(8, 8, 64, 10), 4);
  ASSERT_EQ(plans.size(), 4u);
  const int64_t begins[] = {0, 3, 6, 9};
  const int64_t ends[] = {3, 6, 9, 10};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(plans[r].vocab_local, 3);
    EXPECT_EQ(plans[r].vocab_begin, begins[r]);
    EXPECT_EQ(plans[r].vocab_end, ends[r]);
  }
  // A vocabulary so small that the last rank owns no real rows at all.
  const auto tiny = Plans(Dims(8, 8, 64, 5), 4);
  ASSERT_EQ(tiny.size(), 4u);
  EXPECT_EQ(tiny[3].vocab_local, 2);
  EXPECT_EQ(tiny[3].vocab_begin, 5);
  EXPECT_EQ(tiny[3].vocab_end, 5);
}

// Every query head is owned by exactly one rank, and the KV head it reads is local to that rank.
TEST(ShardPlanTest, EveryQueryHeadFindsItsKvHeadLocally) {
  for (int64_t heads : {1, 2, 4, 8, 16, 32}) {
    for (int64_t kv : {1, 2, 4, 8, 16, 32}) {
      if (kv > heads || heads % kv != 0) continue;
      for (int tp : {1, 2, 4, 8}) {
        if (heads % tp != 0 || (kv >= tp ? kv % tp : tp % kv) != 0) continue;
        std::vector<int> owners(heads, 0);
        std::vector<int> kv_owners(kv, 0);
        for (const ShardPlan& plan : Plans(Dims(heads, kv), tp)) {
          for (int64_t h = plan.head_begin; h < plan.head_begin + plan.heads_local; ++h) {
            ++owners[h];
            const int64_t kv_head = h / (heads / kv);
            EXPECT_GE(kv_head, plan.kv_head_begin) << heads << "/" << kv << " tp " << tp;
            EXPECT_LT(kv_head, plan.kv_head_begin + plan.kv_heads_local);
          }
          for (int64_t k = plan.kv_head_begin; k < plan.kv_head_begin + plan.kv_heads_local; ++k) {
            ++kv_owners[k];
          }
        }
        for (int count : owners) EXPECT_EQ(count, 1);
        for (int count : kv_owners) EXPECT_EQ(count, kv >= tp ? 1 : tp / kv);
      }
    }
  }
}

TEST(ShardPlanTest, ErrorsNameTheValueAndTp) {
  EXPECT_EQ(ErrorOf(Dims(8, 8), 0, 3), "num_attention_heads (8) is not divisible by tp (3)");
  EXPECT_EQ(ErrorOf(Dims(12, 6), 0, 4), "num_key_value_heads (6) is not divisible by tp (4)");
  EXPECT_THAT(ErrorOf(Dims(6, 2, 66), 0, 3),
              ::testing::HasSubstr("tp (3) is not a multiple of num_key_value_heads (2)"));
  EXPECT_EQ(ErrorOf(Dims(8, 8, 10), 0, 4), "intermediate_size (10) is not divisible by tp (4)");
  EXPECT_THAT(ErrorOf(Dims(8, 8), 2, 2), ::testing::HasSubstr("rank 2"));
  EXPECT_THAT(ErrorOf(Dims(8, 8), 0, 0), ::testing::HasSubstr("tp (0)"));
  EXPECT_THAT(ErrorOf(Dims(8, 3), 0, 1),
              ::testing::HasSubstr("not a multiple of num_key_value_heads (3)"));
  EXPECT_EQ(ErrorOf(Dims(8, 0), 0, 1), "num_key_value_heads (0) must be positive");
}

}  // namespace
}  // namespace pagedllm::parallel
