#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/scheduler/scheduler_test_util.h"

namespace pagedllm::coordinator {
namespace {

using ::pagedllm::coordinator::testing::FindScheduled;
using ::pagedllm::coordinator::testing::MakePrompt;
using ::pagedllm::coordinator::testing::MakeSpec;
using ::pagedllm::coordinator::testing::SchedulerDriver;
using ::pagedllm::coordinator::testing::TestConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(SchedulerTest, SinglePromptPrefillsThenDecodes) {
  SchedulerDriver driver(TestConfig(/*num_blocks=*/100, /*block_size=*/4));
  ASSERT_TRUE(driver.Add(1, /*num_prompt_tokens=*/10, /*max_tokens=*/5).ok());
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);

  SchedulerOutput prefill = driver.Schedule();
  EXPECT_EQ(prefill.step_id, 1u);
  ASSERT_EQ(prefill.scheduled.size(), 1u);
  const ScheduledSequence& s = prefill.scheduled[0];
  EXPECT_EQ(s.seq_id, 1u);                      // the scheduler's first id
  ASSERT_EQ(prefill.new_sequences.size(), 1u);  // the workers meet it once
  EXPECT_EQ(prefill.new_sequences[0].seq_id, 1u);
  EXPECT_EQ(s.begin, 0);
  EXPECT_EQ(s.end, 10);
  EXPECT_TRUE(s.sample);
  EXPECT_TRUE(s.reset_block_table);
  EXPECT_THAT(s.new_block_ids, ElementsAre(0, 1, 2));  // ceil(10 / 4)
  EXPECT_EQ(prefill.num_scheduled_tokens, 10);
  EXPECT_EQ(driver.scheduler().num_running(), 1);
  driver.Done(prefill);
  const Sequence* seq = driver.Get(1);
  ASSERT_NE(seq, nullptr);
  EXPECT_EQ(seq->num_tokens(), 11);
  EXPECT_EQ(seq->num_computed_tokens, 10);
  EXPECT_EQ(seq->num_generated_tokens(), 1);

  // Decodes: one token each, the last sampled one, at its own position.
  const std::vector<std::vector<int32_t>> expected_new_blocks = {{}, {}, {3}, {}};
  for (int step = 0; step < 4; ++step) {
    SchedulerOutput decode = driver.Schedule();
    ASSERT_EQ(decode.scheduled.size(), 1u);
    const ScheduledSequence& d = decode.scheduled[0];
    EXPECT_EQ(d.begin, 10 + step);
    EXPECT_EQ(d.end, 11 + step);
    EXPECT_TRUE(d.sample);
    EXPECT_THAT(decode.new_sequences, IsEmpty());
    EXPECT_FALSE(d.reset_block_table);
    EXPECT_EQ(d.new_block_ids, expected_new_blocks[step]);
    driver.Done(decode);
  }
  // The driver finished it at max_tokens: all blocks are back, and the workers hear of it.
  EXPECT_EQ(driver.scheduler().GetSequence(1), nullptr);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 100);
  ASSERT_EQ(driver.finished().size(), 1u);
  EXPECT_EQ(driver.finished()[0]->num_tokens(), 15);
  EXPECT_EQ(driver.finished()[0]->status, SequenceStatus::kFinishedLength);
  SchedulerOutput after = driver.Step();
  EXPECT_TRUE(after.empty());
  EXPECT_THAT(after.finished_seq_ids, ElementsAre(1u));
  EXPECT_FALSE(driver.scheduler().has_unfinished());
}

TEST(SchedulerTest, TokenBudgetChunksALongPromptAndSamplesOnlyAtItsEnd) {
  SchedulerDriver driver(TestConfig(100, 4, /*max_num_batched_tokens=*/8));
  ASSERT_TRUE(driver.Add(1, 20, 3).ok());
  const int expected_end[] = {8, 16, 20};
  const size_t expected_blocks[] = {2, 2, 1};
  for (int step = 0; step < 3; ++step) {
    SchedulerOutput output = driver.Schedule();
    ASSERT_EQ(output.scheduled.size(), 1u);
    const ScheduledSequence& s = output.scheduled[0];
    EXPECT_EQ(s.begin, step * 8);
    EXPECT_EQ(s.end, expected_end[step]);
    EXPECT_EQ(s.sample, step == 2);
    EXPECT_EQ(s.reset_block_table, step == 0);
    EXPECT_EQ(s.new_block_ids.size(), expected_blocks[step]);
    driver.Done(output);
    EXPECT_EQ(driver.Get(1)->num_generated_tokens(), step == 2 ? 1 : 0);
    EXPECT_EQ(driver.Get(1)->num_computed_tokens, expected_end[step]);
  }
  SchedulerOutput decode = driver.Schedule();
  ASSERT_EQ(decode.scheduled.size(), 1u);
  EXPECT_EQ(decode.scheduled[0].begin, 20);
  EXPECT_EQ(decode.scheduled[0].end, 21);
  EXPECT_TRUE(decode.scheduled[0].sample);
  EXPECT_THAT(decode.scheduled[0].new_block_ids, ElementsAre(5));
  driver.Done(decode);
}

TEST(SchedulerTest, PrefillAndDecodeShareAStep) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.Add(1, 4, 10).ok());
  driver.Step();
  ASSERT_TRUE(driver.Add(2, 6, 10).ok());
  SchedulerOutput output = driver.Schedule();
  ASSERT_EQ(output.scheduled.size(), 2u);
  const ScheduledSequence& decode = output.scheduled[0];  // running ones come first
  const ScheduledSequence& prefill = output.scheduled[1];
  EXPECT_EQ(decode.seq_id, 1u);
  EXPECT_EQ(decode.begin, 4);
  EXPECT_EQ(decode.end, 5);
  EXPECT_TRUE(decode.sample);
  EXPECT_FALSE(decode.reset_block_table);
  EXPECT_THAT(decode.new_block_ids, ElementsAre(1));  // position 4 opens the second block
  EXPECT_EQ(prefill.seq_id, 2u);
  EXPECT_EQ(prefill.begin, 0);
  EXPECT_EQ(prefill.end, 6);
  EXPECT_TRUE(prefill.sample);
  EXPECT_TRUE(prefill.reset_block_table);
  EXPECT_EQ(output.num_scheduled_tokens, 7);
  driver.Done(output);
  EXPECT_EQ(driver.Get(1)->num_tokens(), 6);
  EXPECT_EQ(driver.Get(2)->num_tokens(), 7);
}

TEST(SchedulerTest, TokenBudgetIsSharedInArrivalOrder) {
  SchedulerDriver driver(TestConfig(100, 4, /*max_num_batched_tokens=*/10));
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(driver.Add(id, 6, 10).ok());
  SchedulerOutput first = driver.Schedule();
  ASSERT_EQ(first.scheduled.size(), 2u);
  EXPECT_EQ(first.scheduled[0].end, 6);
  EXPECT_TRUE(first.scheduled[0].sample);
  EXPECT_EQ(first.scheduled[1].seq_id, 2u);
  EXPECT_EQ(first.scheduled[1].end, 4);  // what is left of the budget
  EXPECT_FALSE(first.scheduled[1].sample);
  EXPECT_EQ(first.num_scheduled_tokens, 10);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  driver.Done(first);

  SchedulerOutput second = driver.Schedule();
  ASSERT_EQ(second.scheduled.size(), 3u);
  EXPECT_EQ(second.scheduled[0].begin, 6);  // 1 decodes
  EXPECT_EQ(second.scheduled[0].end, 7);
  EXPECT_EQ(second.scheduled[1].begin, 4);  // 2 finishes its prompt
  EXPECT_EQ(second.scheduled[1].end, 6);
  EXPECT_TRUE(second.scheduled[1].sample);
  EXPECT_FALSE(second.scheduled[1].reset_block_table);
  EXPECT_EQ(second.scheduled[2].seq_id, 3u);  // 3 gets the remaining 7 >= 6
  EXPECT_EQ(second.scheduled[2].end, 6);
  EXPECT_TRUE(second.scheduled[2].reset_block_table);
  EXPECT_EQ(second.num_scheduled_tokens, 9);
  driver.Done(second);
}

TEST(SchedulerTest, SequenceBudgetLimitsRunningSequences) {
  SchedulerDriver driver(TestConfig(100, 4, 2048, /*max_num_seqs=*/2));
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(driver.Add(id, 4, 10).ok());
  for (int step = 0; step < 3; ++step) {
    SchedulerOutput output = driver.Step();
    ASSERT_EQ(output.scheduled.size(), 2u);
    EXPECT_EQ(FindScheduled(output, driver.Id(3)), nullptr);
    EXPECT_EQ(driver.scheduler().num_running(), 2);
    EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  }
  ASSERT_TRUE(driver.Finish(driver.Id(1), SequenceStatus::kFinishedStopped).ok());
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(2));
  EXPECT_EQ(output.scheduled[1].seq_id, driver.Id(3));
  EXPECT_TRUE(output.scheduled[1].reset_block_table);
}

TEST(SchedulerTest, HeadOfLineThatDoesNotFitBlocksLaterArrivals) {
  SchedulerDriver driver(TestConfig(/*num_blocks=*/10, /*block_size=*/4));
  ASSERT_TRUE(driver.Add(1, 24, 4).ok());  // 6 blocks
  driver.Step();
  ASSERT_TRUE(driver.Add(2, 20, 4).ok());  // 5 blocks: only 4 free
  ASSERT_TRUE(driver.Add(3, 4, 4).ok());   // 1 block would fit, but 2 came first
  EXPECT_EQ(driver.blocks().CanAllocate(20), AllocationCheck::kLater);
  for (int step = 0; step < 2; ++step) {
    SchedulerOutput output = driver.Step();
    ASSERT_EQ(output.scheduled.size(), 1u);
    EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
    EXPECT_EQ(driver.scheduler().num_waiting(), 2);
  }
  ASSERT_TRUE(driver.Finish(driver.Id(1), SequenceStatus::kFinishedStopped).ok());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(2));
  EXPECT_EQ(output.scheduled[1].seq_id, driver.Id(3));
  EXPECT_THAT(output.finished_seq_ids, ElementsAre(driver.Id(1)));
}

TEST(SchedulerTest, WatermarkKeepsBlocksFreeAtAdmission) {
  SchedulerConfig config = TestConfig(10, 4);
  config.blocks.watermark = 0.2;  // 2 blocks
  SchedulerDriver driver(config);
  ASSERT_TRUE(driver.Add(1, 20, 10).ok());  // 5 blocks, 5 left
  ASSERT_TRUE(driver.Add(2, 16, 4).ok());   // 4 blocks would leave 1 < 2
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  // A running sequence may grow into the watermark.
  for (int step = 0; step < 3; ++step) driver.Step();
  EXPECT_EQ(driver.blocks().table(driver.Id(1)).size(), 6u);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
}

TEST(SchedulerTest, PreemptsNewestRunningAndResumesItByRecompute) {
  // 6 blocks of 4 tokens; two sequences of 8 prompt tokens that want 12 more each.
  SchedulerDriver driver(TestConfig(6, 4));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.Add(2, 8, 12).ok());
  for (int step = 0; step < 5; ++step) {
    SchedulerOutput output = driver.Step();
    EXPECT_EQ(output.scheduled.size(), 2u);
    EXPECT_THAT(output.preempted_seq_ids, IsEmpty());
  }
  // Both hold 3 blocks (12 computed tokens, 13 tokens): the pool is full.
  EXPECT_EQ(driver.blocks().num_free_blocks(), 0);
  const std::vector<int32_t> tokens_before = driver.Get(2)->token_ids;
  ASSERT_EQ(tokens_before.size(), 13u);

  // Position 12 of sequence 1 needs a fourth block: sequence 2 (newest) is preempted.
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_THAT(output.swap_out, IsEmpty());
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
  EXPECT_EQ(output.scheduled[0].new_block_ids.size(), 1u);
  const Sequence* preempted = driver.Get(2);
  EXPECT_EQ(preempted->status, SequenceStatus::kPreempted);
  EXPECT_EQ(preempted->num_computed_tokens, 0);
  EXPECT_EQ(preempted->num_preemptions, 1);
  EXPECT_EQ(preempted->token_ids, tokens_before);  // generated tokens kept
  EXPECT_FALSE(driver.blocks().HasTable(driver.Id(2)));
  EXPECT_EQ(driver.scheduler().counters().num_preemptions, 1);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_out, 0);
  driver.Done(output);

  // 1 runs alone to its end; then 2 comes back and recomputes prompt + generated tokens.
  const ScheduledSequence* resumed = nullptr;
  SchedulerOutput resume_step;
  for (int step = 0; step < 20 && resumed == nullptr; ++step) {
    resume_step = driver.Schedule();
    EXPECT_THAT(resume_step.preempted_seq_ids, IsEmpty());
    resumed = FindScheduled(resume_step, driver.Id(2));
    if (resumed == nullptr) driver.Done(resume_step);
  }
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(driver.Get(1), nullptr);  // finished at max_tokens
  EXPECT_EQ(resumed->begin, 0);
  EXPECT_EQ(resumed->end, 13);
  EXPECT_TRUE(resumed->sample);
  EXPECT_TRUE(resumed->reset_block_table);
  EXPECT_THAT(resume_step.new_sequences, IsEmpty());  // the workers still know it
  EXPECT_EQ(resumed->new_block_ids.size(), 4u);
  driver.Done(resume_step);
  const Sequence* seq = driver.Get(2);
  EXPECT_EQ(seq->status, SequenceStatus::kRunning);
  EXPECT_EQ(seq->num_tokens(), 14);
  EXPECT_EQ(seq->num_generated_tokens(), 6);  // sampling went on after the kept tokens
  EXPECT_TRUE(std::equal(tokens_before.begin(), tokens_before.end(), seq->token_ids.begin()));
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.finished().back()->num_generated_tokens(), 12);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);
}

TEST(SchedulerTest, NewestSequencePreemptsItselfWhenNothingNewerIsLeft) {
  SchedulerDriver driver(TestConfig(5, 4));
  ASSERT_TRUE(driver.Add(1, 8, 8).ok());
  ASSERT_TRUE(driver.Add(2, 8, 8).ok());
  driver.Step();  // 4 blocks taken, 1 free
  SchedulerOutput output = driver.Schedule();
  // Position 8: sequence 1 takes the last block; sequence 2 finds none and is the newest.
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_EQ(driver.scheduler().num_running(), 1);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  EXPECT_EQ(driver.Get(2)->num_tokens(), 9);
  driver.Done(output);
}

TEST(SchedulerTest, NoAdmissionInAStepThatPreemptedAndPreemptedGoFirst) {
  SchedulerDriver driver(TestConfig(6, 4));
  ASSERT_TRUE(driver.Add(1, 8, 16).ok());  // 24 tokens: the whole pool
  ASSERT_TRUE(driver.Add(2, 8, 16).ok());
  driver.Step();  // 4 blocks taken, 2 free
  ASSERT_TRUE(driver.Add(3, 1, 1).ok());
  for (int step = 0; step < 4; ++step) {  // positions 8 .. 11: the two take the last 2 blocks
    SchedulerOutput output = driver.Step();
    EXPECT_EQ(FindScheduled(output, driver.Id(3)), nullptr);
  }
  // Position 12 of 1 preempts 2, which frees 3 blocks: 3 would fit, but not in this step.
  SchedulerOutput output = driver.Step();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 2);
  // Nor in the next: 2 is at the head of the queue again and needs 4 blocks.
  output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
  EXPECT_EQ(driver.scheduler().num_waiting(), 2);
}

TEST(SchedulerTest, AbortAndFinishFreeBlocksAtOnce) {
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.Add(1, 8, 10).ok());
  ASSERT_TRUE(driver.Add(2, 8, 10).ok());
  driver.Step();
  ASSERT_TRUE(driver.Add(3, 39, 1).ok());  // waits: needs all 10 blocks
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);

  ASSERT_TRUE(driver.Finish(driver.Id(1), SequenceStatus::kFinishedAborted).ok());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 8);
  EXPECT_EQ(driver.Get(1), nullptr);
  EXPECT_EQ(driver.scheduler().GetGroup(driver.Group(1)), nullptr);  // its last sequence went
  EXPECT_EQ(driver.scheduler()
                .FinishSequence(driver.Id(1), SequenceStatus::kFinishedAborted)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      driver.scheduler().FinishGroup(driver.Group(1), SequenceStatus::kFinishedAborted).code(),
      absl::StatusCode::kNotFound);
  // A waiting sequence the workers never saw: freed, but not announced.
  ASSERT_TRUE(driver.Finish(driver.Id(3), SequenceStatus::kFinishedAborted).ok());
  EXPECT_EQ(driver.scheduler().num_waiting(), 0);

  // Aborting while its step is in flight: blocks back at once, OnStepDone skips it.
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.finished_seq_ids, ElementsAre(driver.Id(1)));
  ASSERT_NE(FindScheduled(output, driver.Id(2)), nullptr);
  absl::StatusOr<std::unique_ptr<Sequence>> aborted =
      driver.scheduler().FinishSequence(driver.Id(2), SequenceStatus::kFinishedAborted);
  ASSERT_TRUE(aborted.ok());
  EXPECT_EQ((*aborted)->status, SequenceStatus::kFinishedAborted);
  EXPECT_EQ((*aborted)->num_tokens(), 9);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
  driver.scheduler().CheckInvariants();
  driver.Done(output);
  SchedulerOutput last = driver.Step();
  EXPECT_TRUE(last.empty());
  EXPECT_THAT(last.finished_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_FALSE(driver.scheduler().has_unfinished());
}

TEST(SchedulerTest, FinishHandsBackTheSequenceWithItsTokens) {
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.Add(7, 3, 10).ok());
  driver.Step();
  driver.Step();
  // The request id lives on the group now.
  EXPECT_EQ(driver.scheduler().GetGroup(driver.Group(7))->request_id, "request-7");
  absl::StatusOr<std::unique_ptr<Sequence>> seq =
      driver.scheduler().FinishSequence(driver.Id(7), SequenceStatus::kFinishedStopped);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ((*seq)->status, SequenceStatus::kFinishedStopped);
  EXPECT_EQ((*seq)->seq_id, driver.Id(7));
  EXPECT_EQ((*seq)->group, nullptr);
  EXPECT_THAT((*seq)->token_ids, ElementsAre(7000, 7001, 7002, 500000, 500001));
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
}

TEST(SchedulerTest, AddGroupRejectsWhatCanNeverRun) {
  SchedulerConfig config = TestConfig(/*num_blocks=*/100, /*block_size=*/16);
  config.max_model_len = 8192;
  config.max_waiting = 2;
  Scheduler scheduler(config);

  absl::Status status = scheduler.AddGroup(MakeSpec(1, 9000, 16)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "prompt has 9000 tokens, max_model_len is 8192");

  status = scheduler.AddGroup(MakeSpec(1, 100, 8100)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "prompt has 100 tokens and max_tokens is 8100: 8200 tokens exceed max_model_len 8192");

  status = scheduler.AddGroup(MakeSpec(1, 1000, 1000)).status();  // 125 blocks > 100
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("that needs up to 125 blocks of 16 tokens, but the KV cache has 100 "
                        "blocks (0 kept free as watermark)"));

  EXPECT_EQ(scheduler.AddGroup(MakeSpec(1, 0, 16)).status().message(), "prompt is empty");
  EXPECT_EQ(scheduler.AddGroup(MakeSpec(1, 10, 0)).status().message(),
            "max_tokens must be at least 1, got 0");

  absl::StatusOr<uint64_t> first = scheduler.AddGroup(MakeSpec(1, 1500, 100));  // 100 blocks
  ASSERT_TRUE(first.ok());
  // Ids come from the scheduler: the same request id twice is two groups (the old
  // ALREADY_EXISTS for a duplicate sequence id cannot happen any more).
  absl::StatusOr<uint64_t> second = scheduler.AddGroup(MakeSpec(1, 10, 10));
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*first, *second);
  EXPECT_NE(scheduler.GetGroup(*first)->seqs[0]->seq_id,
            scheduler.GetGroup(*second)->seqs[0]->seq_id);
  status = scheduler.AddGroup(MakeSpec(3, 10, 10)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "waiting queue is full (2 requests)");
  // Bad input is bad input even under load.
  EXPECT_EQ(scheduler.AddGroup(MakeSpec(3, 9000, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.num_waiting(), 2);
  scheduler.CheckInvariants();
}

TEST(SchedulerTest, AddGroupRejectsBadWidths) {
  SchedulerConfig config = TestConfig(/*num_blocks=*/100, /*block_size=*/16, 2048,
                                      /*max_num_seqs=*/4);
  Scheduler scheduler(config);
  GroupSpec spec = MakeSpec(1, 10, 10);
  spec.num_samples = 0;
  EXPECT_EQ(scheduler.AddGroup(spec).status().message(),
            "best_of is 0: it must be in [1, max_num_seqs = 4]");
  spec.num_samples = 5;
  spec.beam_search = true;
  EXPECT_EQ(scheduler.AddGroup(spec).status().message(),
            "beam width is 5: it must be in [1, max_num_seqs = 4]");
  // Every further sample counts its own generated blocks and a copy of the last prompt block:
  // 20 + 80 tokens = 7 blocks, then 3 x (5 + 1).
  spec = MakeSpec(1, 20, 80);
  spec.num_samples = 4;
  absl::Status status = scheduler.AddGroup(spec).status();
  EXPECT_TRUE(status.ok()) << status;
  SchedulerConfig small = config;
  small.blocks.num_blocks = 24;
  Scheduler tight(small);
  status = tight.AddGroup(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("for 4 sequences: that needs up to 25 blocks of 16 tokens"));
  spec.num_samples = 3;  // 7 + 2 x 6 = 19
  EXPECT_TRUE(tight.AddGroup(spec).ok());
}

TEST(SchedulerTest, StepIdsCountUpWithoutGaps) {
  SchedulerDriver driver(TestConfig(10, 4));
  // Nothing to do: no step id taken.
  EXPECT_EQ(driver.Step().step_id, 0u);
  ASSERT_TRUE(driver.Add(1, 3, 3).ok());
  for (uint64_t step = 1; step <= 3; ++step) EXPECT_EQ(driver.Step().step_id, step);
  // Finished at max_tokens: the next output still has work (telling the workers).
  SchedulerOutput farewell = driver.Step();
  EXPECT_TRUE(farewell.empty());
  EXPECT_TRUE(farewell.has_work());
  EXPECT_EQ(farewell.step_id, 4u);
  EXPECT_EQ(driver.Step().step_id, 0u);
  EXPECT_EQ(driver.Step().step_id, 0u);
  ASSERT_TRUE(driver.Add(2, 3, 3).ok());
  EXPECT_EQ(driver.Step().step_id, 5u);
}

TEST(SchedulerTest, MissingSampledTokenLeavesTheSequenceOwedItsToken) {
  // (It used to abort; now the caller may append the token itself, as beam search does.)
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.Add(4, 3, 3).ok());
  SchedulerOutput output = driver.Schedule();
  driver.Done(output, {});
  const Sequence* seq = driver.Get(4);
  EXPECT_EQ(seq->num_tokens(), 3);
  EXPECT_EQ(seq->num_computed_tokens, 3);
  EXPECT_EQ(seq->num_uncomputed_tokens(), 0);
  // Nothing to compute until it gets its token.
  EXPECT_TRUE(driver.Step().empty());
  driver.AppendToken(driver.Id(4), 77);
  output = driver.Schedule();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].begin, 3);
  EXPECT_THAT(output.scheduled[0].token_ids, ElementsAre(77));
  driver.Done(output);
}

// ---------------------------------------------------------------------------------------------
// Parallel samples (n > 1, not beam search).

GroupSpec SamplesSpec(uint64_t key, int num_prompt_tokens, int max_tokens, int num_samples,
                      uint64_t seed) {
  GroupSpec spec = MakeSpec(key, num_prompt_tokens, max_tokens);
  spec.num_samples = num_samples;
  spec.sampling.seed = seed;
  return spec;
}

TEST(SchedulerTest, SamplesShareThePromptThenForkAndCopyTheLastBlock) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.AddGroup(1, SamplesSpec(1, 10, 5, /*num_samples=*/3, /*seed=*/100)).ok());
  const SequenceGroup* group = driver.scheduler().GetGroup(driver.Group(1));
  ASSERT_EQ(group->seqs.size(), 1u);  // one sequence computes the shared prompt
  EXPECT_EQ(group->fork_at, 9);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);

  // Step 1: the prompt but its last token, without sampling.
  SchedulerOutput prefill = driver.Schedule();
  ASSERT_EQ(prefill.scheduled.size(), 1u);
  EXPECT_EQ(prefill.scheduled[0].seq_id, 1u);
  EXPECT_EQ(prefill.scheduled[0].begin, 0);
  EXPECT_EQ(prefill.scheduled[0].end, 9);
  EXPECT_FALSE(prefill.scheduled[0].sample);
  EXPECT_THAT(prefill.scheduled[0].new_block_ids, ElementsAre(0, 1, 2));
  ASSERT_EQ(prefill.new_sequences.size(), 1u);
  EXPECT_EQ(prefill.new_sequences[0].sampling.seed, 100u);
  EXPECT_THAT(prefill.forks, IsEmpty());
  driver.Done(prefill);

  // OnStepDone forked it into 3 sequences sharing its blocks.
  ASSERT_EQ(group->seqs.size(), 3u);
  EXPECT_EQ(group->fork_at, -1);
  for (int i = 0; i < 3; ++i) {
    const Sequence* seq = group->seqs[i];
    EXPECT_EQ(seq->seq_id, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(seq->sample_index, i);
    EXPECT_EQ(seq->sampling.seed, 100u + i);
    EXPECT_EQ(seq->num_computed_tokens, 9);
    EXPECT_EQ(seq->num_tokens(), 10);
    EXPECT_EQ(seq->status, SequenceStatus::kRunning);
    EXPECT_THAT(driver.blocks().table(seq->seq_id), ElementsAre(0, 1, 2));
  }
  EXPECT_EQ(driver.blocks().RefCount(2), 3);
  EXPECT_EQ(driver.scheduler().num_running(), 3);

  // Step 2: the forks reach the workers; each sample computes the last prompt token itself and
  // samples; the shared partly filled block 2 is copied for all but the last writer.
  SchedulerOutput fork_step = driver.Schedule();
  ASSERT_EQ(fork_step.forks.size(), 2u);
  EXPECT_EQ(fork_step.forks[0].parent_seq_id, 1u);
  EXPECT_EQ(fork_step.forks[0].child_seq_id, 2u);
  EXPECT_EQ(fork_step.forks[0].sampling.seed, 101u);
  EXPECT_EQ(fork_step.forks[1].parent_seq_id, 1u);
  EXPECT_EQ(fork_step.forks[1].child_seq_id, 3u);
  EXPECT_EQ(fork_step.forks[1].sampling.seed, 102u);
  EXPECT_THAT(fork_step.new_sequences, IsEmpty());  // the forks introduce them
  ASSERT_EQ(fork_step.scheduled.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const ScheduledSequence& s = fork_step.scheduled[i];
    EXPECT_EQ(s.seq_id, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(s.begin, 9);
    EXPECT_EQ(s.end, 10);
    EXPECT_THAT(s.token_ids, ElementsAre(1009));
    EXPECT_TRUE(s.sample);
    EXPECT_FALSE(s.reset_block_table);
    EXPECT_THAT(s.new_block_ids, IsEmpty());
  }
  EXPECT_THAT(fork_step.block_copies, ElementsAre(BlockCopy{2, 3}, BlockCopy{2, 4}));
  EXPECT_THAT(fork_step.scheduled[0].replacements, ElementsAre(BlockReplacement{2, 3}));
  EXPECT_THAT(fork_step.scheduled[1].replacements, ElementsAre(BlockReplacement{2, 4}));
  EXPECT_THAT(fork_step.scheduled[2].replacements, IsEmpty());
  EXPECT_EQ(fork_step.num_scheduled_tokens, 3);
  EXPECT_EQ(driver.blocks().RefCount(0), 3);  // full prompt blocks stay shared
  EXPECT_EQ(driver.blocks().RefCount(2), 1);
  driver.Done(fork_step);
  for (const Sequence* seq : group->seqs) EXPECT_EQ(seq->num_generated_tokens(), 1);

  // Then plain decodes, no more copies; all finish at max_tokens and every block comes back.
  SchedulerOutput decode = driver.Step();
  EXPECT_EQ(decode.scheduled.size(), 3u);
  EXPECT_THAT(decode.block_copies, IsEmpty());
  EXPECT_THAT(decode.forks, IsEmpty());
  while (driver.scheduler().has_unfinished()) driver.Step();
  ASSERT_EQ(driver.finished().size(), 3u);
  for (const auto& seq : driver.finished()) EXPECT_EQ(seq->num_generated_tokens(), 5);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 100);
}

TEST(SchedulerTest, SamplesForkingAtABlockBoundaryCopyNothing) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.AddGroup(1, SamplesSpec(1, 9, 3, 2, 5)).ok());  // fork at 8
  SchedulerOutput prefill = driver.Step();
  EXPECT_EQ(prefill.scheduled[0].end, 8);
  SchedulerOutput fork_step = driver.Schedule();
  EXPECT_EQ(fork_step.forks.size(), 1u);
  EXPECT_THAT(fork_step.block_copies, IsEmpty());
  ASSERT_EQ(fork_step.scheduled.size(), 2u);
  EXPECT_THAT(fork_step.scheduled[0].new_block_ids, ElementsAre(2));
  EXPECT_THAT(fork_step.scheduled[1].new_block_ids, ElementsAre(3));
  driver.Done(fork_step);
}

TEST(SchedulerTest, OneTokenPromptStartsEverySampleAtOnce) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.AddGroup(1, SamplesSpec(1, 1, 2, 3, 7)).ok());
  const SequenceGroup* group = driver.scheduler().GetGroup(driver.Group(1));
  ASSERT_EQ(group->seqs.size(), 3u);
  EXPECT_EQ(group->fork_at, -1);
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.forks, IsEmpty());
  EXPECT_THAT(output.block_copies, IsEmpty());
  ASSERT_EQ(output.new_sequences.size(), 3u);
  ASSERT_EQ(output.scheduled.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(output.new_sequences[i].seq_id, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(output.new_sequences[i].sampling.seed, 7u + i);
    EXPECT_EQ(output.scheduled[i].begin, 0);
    EXPECT_EQ(output.scheduled[i].end, 1);
    EXPECT_TRUE(output.scheduled[i].sample);
    EXPECT_THAT(output.scheduled[i].new_block_ids, ElementsAre(i));  // nothing shared
  }
  driver.Done(output);
}

TEST(SchedulerTest, AGroupCountsItsWidthAgainstMaxNumSeqsFromAdmission) {
  SchedulerDriver driver(TestConfig(100, 4, 2048, /*max_num_seqs=*/4));
  ASSERT_TRUE(driver.AddGroup(1, SamplesSpec(1, 6, 4, 3, 0)).ok());
  ASSERT_TRUE(driver.Add(2, 4, 4).ok());
  ASSERT_TRUE(driver.Add(3, 4, 4).ok());
  SchedulerOutput output = driver.Step();
  // The group runs one sequence for now but holds 3 of the 4 places: 2 fits, 3 does not.
  EXPECT_EQ(output.scheduled.size(), 2u);
  EXPECT_NE(FindScheduled(output, driver.Id(2)), nullptr);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  output = driver.Step();
  EXPECT_EQ(output.scheduled.size(), 4u);  // 3 samples + 2
  EXPECT_EQ(FindScheduled(output, driver.Id(3)), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Prefix caching.

SchedulerConfig CachingConfig(int32_t num_blocks, int32_t block_size) {
  SchedulerConfig config = TestConfig(num_blocks, block_size);
  config.enable_prefix_caching = true;
  return config;
}

TEST(SchedulerTest, PrefixCacheServesASecondRequestWithTheSamePrompt) {
  SchedulerDriver driver(CachingConfig(100, 4));
  ASSERT_TRUE(driver.Add(1, 10, 4).ok());
  SchedulerOutput first = driver.Step();
  EXPECT_EQ(first.scheduled[0].begin, 0);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_queries, 10);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens, 0);

  ASSERT_TRUE(driver.AddGroup(2, MakeSpec(1, 10, 4)).ok());  // request 1's prompt
  SchedulerOutput second = driver.Schedule();
  const ScheduledSequence* s = FindScheduled(second, driver.Id(2));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->begin, 8);  // two full blocks cached
  EXPECT_EQ(s->end, 10);
  EXPECT_THAT(s->token_ids, ElementsAre(1008, 1009));
  EXPECT_TRUE(s->sample);
  EXPECT_TRUE(s->reset_block_table);
  const std::vector<int32_t>& first_table = driver.blocks().table(driver.Id(1));
  ASSERT_EQ(s->new_block_ids.size(), 3u);  // the whole table: cached blocks then its own
  EXPECT_EQ(s->new_block_ids[0], first_table[0]);
  EXPECT_EQ(s->new_block_ids[1], first_table[1]);
  EXPECT_NE(s->new_block_ids[2], first_table[2]);
  EXPECT_EQ(driver.blocks().RefCount(first_table[0]), 2);
  EXPECT_EQ(driver.Get(2)->num_computed_tokens, 8);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_queries, 20);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens, 8);
  EXPECT_EQ(second.num_scheduled_tokens, 1 + 2);  // 1 decodes, 2 computes 2 tokens
  driver.Done(second);
}

TEST(SchedulerTest, PrefixCacheNeverServesTheLastPromptToken) {
  SchedulerDriver driver(CachingConfig(100, 4));
  ASSERT_TRUE(driver.Add(1, 8, 4).ok());  // two full blocks
  driver.Step();
  driver.Step();
  ASSERT_TRUE(driver.AddGroup(2, MakeSpec(1, 8, 4)).ok());
  SchedulerOutput output = driver.Schedule();
  const ScheduledSequence* s = FindScheduled(output, driver.Id(2));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->begin, 4);  // block 1 is cached too, but it holds the last token: computed again
  EXPECT_EQ(s->end, 8);
  EXPECT_TRUE(s->sample);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens, 4);
  driver.Done(output);
  // A one-token prompt never hits at all.
  ASSERT_TRUE(driver.AddGroup(3, MakeSpec(1, 1, 1)).ok());
  output = driver.Schedule();
  EXPECT_EQ(FindScheduled(output, driver.Id(3))->begin, 0);
  driver.Done(output);
}

TEST(SchedulerTest, PrefixCacheServesAFinishedRequestsEvictableBlocks) {
  SchedulerDriver driver(CachingConfig(8, 4));
  ASSERT_TRUE(driver.Add(1, 13, 1).ok());  // 4 blocks, 3 full; finishes after its prefill
  driver.Step();
  ASSERT_EQ(driver.Get(1), nullptr);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 8);
  EXPECT_EQ(driver.blocks().num_cached_free_blocks(), 3);
  ASSERT_TRUE(driver.AddGroup(2, MakeSpec(1, 14, 2)).ok());  // request 1's prompt and one more
  SchedulerOutput output = driver.Schedule();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].begin, 12);
  EXPECT_EQ(driver.blocks().num_cached_free_blocks(), 0);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 8 - 4);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens, 12);
  driver.Done(output);
}

TEST(SchedulerTest, SamplesRegisterTheirPromptForLaterRequests) {
  SchedulerDriver driver(CachingConfig(100, 4));
  ASSERT_TRUE(driver.AddGroup(1, SamplesSpec(1, 10, 4, 2, 0)).ok());  // computes 9, forks
  driver.Step();
  driver.Step();
  ASSERT_TRUE(driver.Add(2, 3, 1).ok());  // unrelated: no hit
  ASSERT_TRUE(driver.AddGroup(3, MakeSpec(1, 12, 4)).ok());
  SchedulerOutput output = driver.Schedule();
  EXPECT_EQ(FindScheduled(output, driver.Id(2))->begin, 0);
  EXPECT_EQ(FindScheduled(output, driver.Id(3))->begin, 8);
  driver.Done(output);
}

TEST(SchedulerTest, WithoutPrefixCachingNothingHits) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.Add(1, 10, 4).ok());
  driver.Step();
  ASSERT_TRUE(driver.AddGroup(2, MakeSpec(1, 10, 4)).ok());
  SchedulerOutput output = driver.Schedule();
  EXPECT_EQ(FindScheduled(output, driver.Id(2))->begin, 0);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_queries, 0);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens, 0);
  EXPECT_EQ(driver.blocks().num_cached_free_blocks(), 0);
  driver.Done(output);
  ASSERT_TRUE(driver.Finish(driver.Id(1), SequenceStatus::kFinishedStopped).ok());
  EXPECT_EQ(driver.blocks().num_cached_free_blocks(), 0);  // nothing was registered
}

TEST(SchedulerTest, RecomputeAfterPreemptionReusesWhatSurvivesOfItsCachedBlocks) {
  // The recompute scenario above with the prefix cache on: 2's blocks stay cached when it is
  // preempted; 1 then evicts two of them (the tail of 2's chain first), so 2 comes back with
  // its first block from the cache.
  SchedulerDriver driver(CachingConfig(6, 4));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.Add(2, 8, 12).ok());
  for (int step = 0; step < 5; ++step) driver.Step();
  const int64_t evictions_before = driver.blocks().num_cache_evictions();
  SchedulerOutput output = driver.Step();
  ASSERT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_EQ(driver.blocks().num_cache_evictions() - evictions_before, 1);  // 1 took one back
  EXPECT_EQ(driver.blocks().num_cached_free_blocks(), 2);
  const int64_t hits_before = driver.scheduler().counters().num_prefix_cache_hit_tokens;
  const ScheduledSequence* resumed = nullptr;
  for (int step = 0; step < 20 && resumed == nullptr; ++step) {
    output = driver.Schedule();
    resumed = FindScheduled(output, driver.Id(2));
    if (resumed == nullptr) driver.Done(output);
  }
  ASSERT_NE(resumed, nullptr);
  EXPECT_GE(driver.blocks().num_cache_evictions(), 2);
  EXPECT_EQ(resumed->begin, 4);
  EXPECT_EQ(resumed->end, 13);
  EXPECT_TRUE(resumed->reset_block_table);
  EXPECT_EQ(driver.scheduler().counters().num_prefix_cache_hit_tokens - hits_before, 4);
  driver.Done(output);
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);
}

// ---------------------------------------------------------------------------------------------
// Swap preemption.

SchedulerConfig SwapConfig(int32_t num_blocks, int32_t block_size, int32_t num_host_blocks,
                           PreemptionMode mode) {
  SchedulerConfig config = TestConfig(num_blocks, block_size);
  config.blocks.num_host_blocks = num_host_blocks;
  config.preemption_mode = mode;
  return config;
}

TEST(SchedulerTest, SwapPreemptionMovesTheNewestGroupToHostAndBackBeforeAdmissions) {
  // The recompute scenario, swapping: 6 blocks of 4 tokens, two sequences of 8 prompt tokens
  // that want 12 more each.
  SchedulerDriver driver(SwapConfig(6, 4, /*num_host_blocks=*/8, PreemptionMode::kSwap));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.Add(2, 8, 12).ok());
  for (int step = 0; step < 5; ++step) driver.Step();
  const std::vector<int32_t> old_table = driver.blocks().table(driver.Id(2));
  ASSERT_THAT(old_table, ElementsAre(2, 3, 5));
  const std::vector<int32_t> tokens_before = driver.Get(2)->token_ids;

  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_THAT(output.swap_out, ElementsAre(BlockSwap{2, 0}, BlockSwap{3, 1}, BlockSwap{5, 2}));
  EXPECT_THAT(output.swap_in, IsEmpty());
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
  const Sequence* swapped = driver.Get(2);
  EXPECT_EQ(swapped->status, SequenceStatus::kSwapped);
  EXPECT_EQ(swapped->num_computed_tokens, 12);  // its KV is kept, on the host
  EXPECT_EQ(driver.scheduler().GetGroup(driver.Group(2))->status, GroupStatus::kSwapped);
  EXPECT_TRUE(driver.blocks().IsSwapped(driver.Id(2)));
  EXPECT_EQ(driver.scheduler().num_swapped(), 1);
  EXPECT_EQ(driver.scheduler().num_waiting(), 0);
  EXPECT_EQ(driver.scheduler().counters().num_preemptions, 1);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_out, 1);
  EXPECT_EQ(driver.blocks().num_free_host_blocks(), 5);
  driver.Done(output);

  // A small request arrives: it would fit in the free blocks, but the swapped group comes
  // back first.
  ASSERT_TRUE(driver.Add(3, 1, 1).ok());
  SchedulerOutput back;
  const ScheduledSequence* resumed = nullptr;
  for (int step = 0; step < 20 && resumed == nullptr; ++step) {
    back = driver.Schedule();
    resumed = FindScheduled(back, driver.Id(2));
    if (resumed == nullptr) {
      EXPECT_EQ(FindScheduled(back, driver.Id(3)), nullptr) << "admitted before the swap-in";
      EXPECT_THAT(back.swap_in, IsEmpty());
      driver.Done(back);
    }
  }
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(driver.Get(1), nullptr);  // 1 finished first
  ASSERT_EQ(back.swap_in.size(), 3u);
  EXPECT_THAT(back.swap_out, IsEmpty());
  EXPECT_THAT(back.preempted_seq_ids, IsEmpty());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(back.swap_in[i].host_block, i);  // table order
  EXPECT_EQ(resumed->begin, 12);
  EXPECT_EQ(resumed->end, 13);
  EXPECT_THAT(resumed->token_ids, ElementsAre(tokens_before[12]));
  EXPECT_TRUE(resumed->sample);
  EXPECT_TRUE(resumed->reset_block_table);  // the whole table: swapped in, then a new block
  ASSERT_EQ(resumed->new_block_ids.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(resumed->new_block_ids[i], back.swap_in[i].device_block);
  EXPECT_EQ(resumed->new_block_ids, driver.blocks().table(driver.Id(2)));
  EXPECT_THAT(
      back.new_sequences,
      ::testing::Not(::testing::Contains(::testing::Field(&NewSequence::seq_id, driver.Id(2)))));
  EXPECT_EQ(driver.scheduler().counters().num_swapped_in, 1);
  EXPECT_EQ(driver.blocks().num_free_host_blocks(), 8);
  // The waiting request is admitted only behind it (here in the same step, after it).
  const ScheduledSequence* admitted = FindScheduled(back, driver.Id(3));
  ASSERT_NE(admitted, nullptr);
  EXPECT_GT(admitted, resumed);
  driver.Done(back);
  EXPECT_EQ(driver.Get(2)->num_generated_tokens(), 6);
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);
  EXPECT_EQ(driver.blocks().num_free_host_blocks(), 8);
}

TEST(SchedulerTest, SwapFallsBackToRecomputeWhenTheHostPoolIsTooSmall) {
  SchedulerDriver driver(SwapConfig(6, 4, /*num_host_blocks=*/2, PreemptionMode::kSwap));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.Add(2, 8, 12).ok());
  for (int step = 0; step < 5; ++step) driver.Step();
  SchedulerOutput output = driver.Schedule();  // 2 holds 3 blocks, the host pool has 2
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_THAT(output.swap_out, IsEmpty());
  EXPECT_EQ(driver.Get(2)->status, SequenceStatus::kPreempted);
  EXPECT_EQ(driver.Get(2)->num_computed_tokens, 0);
  EXPECT_EQ(driver.scheduler().num_swapped(), 0);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_out, 0);
  EXPECT_EQ(driver.scheduler().counters().num_preemptions, 1);
  driver.Done(output);
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.finished().size(), 2u);
}

TEST(SchedulerTest, RecomputeModeNeverSwaps) {
  SchedulerDriver driver(SwapConfig(7, 4, /*num_host_blocks=*/16, PreemptionMode::kRecompute));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.AddGroup(2, SamplesSpec(2, 5, 8, 2, 0)).ok());
  while (driver.scheduler().has_unfinished()) {
    SchedulerOutput output = driver.Step();
    EXPECT_THAT(output.swap_out, IsEmpty());
  }
  EXPECT_GT(driver.scheduler().counters().num_preemptions, 0);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_out, 0);
}

// Request 1 (one sequence) and group 2 (2 samples of a 5-token prompt) fill 7 blocks; at step 6
// request 1's position 12 takes the last free block and group 2 (positions 8, two new blocks,
// none of which fits even for one sample alone) is preempted.
void RunUntilTheSamplesArePreempted(SchedulerDriver& driver, SchedulerOutput* preempting) {
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.AddGroup(2, SamplesSpec(2, 5, 8, 2, 0)).ok());
  for (int step = 0; step < 5; ++step) {
    SchedulerOutput output = driver.Step();
    ASSERT_THAT(output.preempted_seq_ids, IsEmpty());
  }
  ASSERT_EQ(driver.scheduler().GetGroup(driver.Group(2))->seqs.size(), 2u);
  *preempting = driver.Schedule();
}

TEST(SchedulerTest, AutoModeSwapsAGroupOfSeveralSequences) {
  SchedulerDriver driver(SwapConfig(7, 4, /*num_host_blocks=*/16, PreemptionMode::kAuto));
  SchedulerOutput output;
  RunUntilTheSamplesArePreempted(driver, &output);
  const SequenceGroup* group = driver.scheduler().GetGroup(driver.Group(2));
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(2u, 3u));
  EXPECT_EQ(output.swap_out.size(), 3u);  // the shared prompt block once, and one each
  EXPECT_EQ(group->status, GroupStatus::kSwapped);
  EXPECT_EQ(group->num_preemptions, 1);
  EXPECT_EQ(driver.scheduler().counters().num_preemptions, 2);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_out, 2);
  EXPECT_EQ(driver.scheduler().num_swapped(), 2);
  driver.Done(output);

  SchedulerOutput back;
  for (int step = 0; step < 20 && back.swap_in.empty(); ++step) {
    back = driver.Step();
  }
  ASSERT_EQ(back.swap_in.size(), 3u);
  EXPECT_EQ(driver.scheduler().counters().num_swapped_in, 2);
  const ScheduledSequence* a = FindScheduled(back, 2);
  const ScheduledSequence* b = FindScheduled(back, 3);
  ASSERT_TRUE(a != nullptr && b != nullptr);
  EXPECT_TRUE(a->reset_block_table && b->reset_block_table);
  // Still sharing their prompt block.
  EXPECT_EQ(a->new_block_ids[0], b->new_block_ids[0]);
  EXPECT_NE(a->new_block_ids[1], b->new_block_ids[1]);
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.blocks().num_free_blocks(), 7);
  EXPECT_EQ(driver.blocks().num_free_host_blocks(), 16);
}

TEST(SchedulerTest, AutoModeRecomputesASingleSequence) {
  SchedulerDriver driver(SwapConfig(6, 4, /*num_host_blocks=*/16, PreemptionMode::kAuto));
  ASSERT_TRUE(driver.Add(1, 8, 12).ok());
  ASSERT_TRUE(driver.Add(2, 8, 12).ok());
  for (int step = 0; step < 5; ++step) driver.Step();
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(driver.Id(2)));
  EXPECT_THAT(output.swap_out, IsEmpty());
  EXPECT_EQ(driver.Get(2)->status, SequenceStatus::kPreempted);
  driver.Done(output);
}

TEST(SchedulerTest, AutoModeWithoutSwapSpaceRecomputesAGroup) {
  SchedulerDriver driver(SwapConfig(7, 4, /*num_host_blocks=*/0, PreemptionMode::kAuto));
  SchedulerOutput output;
  RunUntilTheSamplesArePreempted(driver, &output);
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(2u, 3u));
  EXPECT_THAT(output.swap_out, IsEmpty());
  EXPECT_EQ(driver.scheduler().GetGroup(driver.Group(2))->status, GroupStatus::kWaiting);
  for (uint64_t id : {2u, 3u}) {
    EXPECT_EQ(driver.scheduler().GetSequence(id)->status, SequenceStatus::kPreempted);
  }
  driver.Done(output);
}

// A swapped group that needs exactly the whole pool to come back: request 2 (28 prompt tokens,
// 7 of 8 blocks, 32 tokens at most = the whole pool) is swapped out when its position 28 needs
// an eighth block; once request 1 finishes, swapping in its 7 blocks and appending 1 fits the
// 8 free blocks exactly. (The swap-in check adds a block per sequence for a copy of a shared
// last block even when nothing is shared, so it asks for 9 and waits forever; since waiting
// groups are only admitted when nothing is swapped, the scheduler then stalls completely.)
TEST(SchedulerTest, SwappedGroupThatFitsThePoolExactlyComesBack) {
  SchedulerDriver driver(SwapConfig(8, 4, /*num_host_blocks=*/16, PreemptionMode::kSwap));
  ASSERT_TRUE(driver.Add(1, 3, 2).ok());
  ASSERT_TRUE(driver.Add(2, 28, 4).ok());
  driver.Step();
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.swap_out.size(), 7u);
  ASSERT_EQ(driver.Get(1), nullptr);  // finished: the whole pool is free
  ASSERT_EQ(driver.blocks().num_free_blocks(), 8);
  ASSERT_TRUE(driver.Add(3, 1, 1).ok());  // and someone waits behind it
  for (int step = 0; step < 20 && driver.scheduler().has_unfinished(); ++step) driver.Step();
  EXPECT_EQ(driver.scheduler().counters().num_swapped_in, 1);
  EXPECT_FALSE(driver.scheduler().has_unfinished())
      << driver.scheduler().num_swapped() << " swapped, " << driver.scheduler().num_waiting()
      << " waiting sequences after 20 steps";
}

// ---------------------------------------------------------------------------------------------
// Beam search groups (the engine's part, by hand: fork, append, prune between steps).

GroupSpec BeamSpec(uint64_t key, int num_prompt_tokens, int max_tokens, int width) {
  GroupSpec spec = MakeSpec(key, num_prompt_tokens, max_tokens);
  spec.num_samples = width;
  spec.beam_search = true;
  return spec;
}

TEST(SchedulerTest, BeamGroupStartsWithOneSequenceAndForksBetweenSteps) {
  SchedulerDriver driver(TestConfig(100, 4));
  ASSERT_TRUE(driver.AddGroup(1, BeamSpec(1, 5, 4, /*width=*/2)).ok());
  const SequenceGroup* group = driver.scheduler().GetGroup(driver.Group(1));
  ASSERT_EQ(group->seqs.size(), 1u);
  EXPECT_EQ(group->fork_at, -1);
  SchedulerOutput prefill = driver.Schedule();
  ASSERT_EQ(prefill.scheduled.size(), 1u);
  EXPECT_EQ(prefill.scheduled[0].end, 5);
  EXPECT_TRUE(prefill.scheduled[0].sample);
  driver.Done(prefill);  // no token: the beam search chooses
  EXPECT_EQ(driver.Get(1)->num_tokens(), 5);
  EXPECT_EQ(driver.Get(1)->num_uncomputed_tokens(), 0);

  // Two extensions of beam 1: it keeps one, a fork takes the other.
  const uint64_t child = driver.Fork(1);
  EXPECT_EQ(child, 2u);
  EXPECT_EQ(group->seqs.size(), 2u);
  EXPECT_THAT(driver.blocks().table(child), ElementsAre(0, 1));
  driver.AppendToken(1, 11);
  driver.AppendToken(child, 12);
  SchedulerOutput step = driver.Schedule();
  ASSERT_EQ(step.forks.size(), 1u);
  EXPECT_EQ(step.forks[0].parent_seq_id, 1u);
  EXPECT_EQ(step.forks[0].child_seq_id, child);
  EXPECT_THAT(step.new_sequences, IsEmpty());
  ASSERT_EQ(step.scheduled.size(), 2u);
  EXPECT_THAT(step.scheduled[0].token_ids, ElementsAre(11));
  EXPECT_THAT(step.scheduled[1].token_ids, ElementsAre(12));
  EXPECT_EQ(step.scheduled[0].begin, 5);
  EXPECT_EQ(step.scheduled[1].begin, 5);
  EXPECT_THAT(step.block_copies, ElementsAre(BlockCopy{1, 2}));  // the shared partial block
  driver.Done(step);

  // Next: both extensions come from the child; beam 1 is pruned.
  const uint64_t grandchild = driver.Fork(child);
  driver.AppendToken(child, 21);
  driver.AppendToken(grandchild, 22);
  ASSERT_TRUE(driver.Finish(1, SequenceStatus::kFinishedAborted).ok());
  EXPECT_EQ(group->seqs.size(), 2u);
  step = driver.Schedule();
  ASSERT_EQ(step.forks.size(), 1u);
  EXPECT_EQ(step.forks[0].parent_seq_id, child);
  EXPECT_EQ(step.forks[0].child_seq_id, grandchild);
  EXPECT_THAT(step.finished_seq_ids, ElementsAre(1u));
  ASSERT_EQ(step.scheduled.size(), 2u);
  EXPECT_EQ(step.scheduled[0].seq_id, child);
  EXPECT_EQ(step.scheduled[1].seq_id, grandchild);
  driver.Done(step);
  ASSERT_TRUE(
      driver.scheduler().FinishGroup(driver.Group(1), SequenceStatus::kFinishedStopped).ok());
  driver.scheduler().CheckInvariants();
  EXPECT_FALSE(driver.scheduler().has_unfinished());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 100);
}

TEST(SchedulerTest, BeamsRunAllTogetherOrNotAtAll) {
  SchedulerDriver driver(TestConfig(100, 4, /*max_num_batched_tokens=*/3));
  ASSERT_TRUE(driver.Add(1, 2, 3).ok());
  ASSERT_TRUE(driver.AddGroup(2, BeamSpec(2, 2, 4, /*width=*/3)).ok());
  SchedulerOutput output = driver.Step();  // 1's prompt, 1 token of 2's: one beam may chunk
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_EQ(output.scheduled[1].end, 1);
  EXPECT_FALSE(output.scheduled[1].sample);
  output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_TRUE(output.scheduled[1].sample);
  const uint64_t beam = driver.Id(2);
  const uint64_t b2 = driver.Fork(beam);
  const uint64_t b3 = driver.Fork(beam);
  driver.AppendToken(beam, 1);
  driver.AppendToken(b2, 2);
  driver.AppendToken(b3, 3);
  // 1 decodes (1 token); the 3 beams need 3 more, 2 are left: none of them runs.
  output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, driver.Id(1));
  for (uint64_t id : {beam, b2, b3}) {
    EXPECT_EQ(driver.scheduler().GetSequence(id)->num_computed_tokens, 2);
  }
  ASSERT_EQ(driver.Get(1), nullptr);  // finished at max_tokens
  output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 3u);
  EXPECT_EQ(output.num_scheduled_tokens, 3);
  for (const ScheduledSequence& s : output.scheduled) EXPECT_TRUE(s.sample);
}

// Drives the beams of a group like the engine, without scores: every owed beam extends itself
// (or finishes at max_tokens).
void ExtendOwedBeams(SchedulerDriver& driver, uint64_t group_id) {
  const SequenceGroup* group = driver.scheduler().GetGroup(group_id);
  if (group == nullptr) return;
  const std::vector<Sequence*> seqs = group->seqs;
  for (Sequence* seq : seqs) {
    if (seq->status != SequenceStatus::kRunning || seq->num_uncomputed_tokens() > 0) continue;
    if (seq->num_generated_tokens() == group->max_tokens) {
      ASSERT_TRUE(driver.Finish(seq->seq_id, SequenceStatus::kFinishedLength).ok());
    } else {
      driver.AppendToken(seq->seq_id, 7);
    }
  }
}

TEST(SchedulerTest, BeamGroupThatMustRecomputeMoreThanTheTokenBudgetFails) {
  // 6 blocks, 8 tokens a step. Request 1 (4 + 8 tokens) and 2 beams of a 4-token prompt;
  // at position 8 of request 1 the beams are preempted and recomputed: 2 x 9 tokens > 8.
  SchedulerConfig config = TestConfig(6, 4, /*max_num_batched_tokens=*/8);
  config.preemption_mode = PreemptionMode::kRecompute;
  SchedulerDriver driver(config);
  ASSERT_TRUE(driver.Add(1, 4, 8).ok());
  ASSERT_TRUE(driver.AddGroup(2, BeamSpec(2, 4, 8, /*width=*/2)).ok());
  driver.Step();
  driver.Fork(driver.Id(2));
  ExtendOwedBeams(driver, driver.Group(2));
  bool preempted = false;
  SchedulerOutput failing;
  for (int step = 0; step < 30 && driver.failed().empty(); ++step) {
    failing = driver.Step();
    preempted = preempted || !failing.preempted_seq_ids.empty();
    ExtendOwedBeams(driver, driver.Group(2));
  }
  EXPECT_TRUE(preempted);
  ASSERT_EQ(driver.failed().size(), 1u);
  EXPECT_EQ(driver.failed()[0].first, driver.Group(2));
  EXPECT_EQ(driver.failed()[0].second.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(driver.failed()[0].second.message()),
              HasSubstr("must recompute 18 tokens in one step after a preemption, more than "
                        "max_num_batched_tokens 8"));
  EXPECT_EQ(driver.scheduler().GetGroup(driver.Group(2)), nullptr);
  // The workers drop its sequences with the very step that failed it.
  EXPECT_THAT(failing.finished_seq_ids, ::testing::IsSupersetOf({2u, 3u}));
  while (driver.scheduler().has_unfinished()) driver.Step();
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);
}

TEST(SchedulerTest, BeamGroupWiderThanTheTokenBudgetFailsInsteadOfWaiting) {
  SchedulerDriver driver(TestConfig(100, 4, /*max_num_batched_tokens=*/3));
  const absl::Status added = driver.AddGroup(1, BeamSpec(1, 2, 4, /*width=*/4));
  if (!added.ok()) {  // refusing it up front is as good
    EXPECT_EQ(added.code(), absl::StatusCode::kInvalidArgument);
    return;
  }
  driver.Step();
  for (int i = 0; i < 3; ++i) driver.Fork(driver.Id(1));
  ExtendOwedBeams(driver, driver.Group(1));
  for (int step = 0; step < 5 && driver.failed().empty(); ++step) driver.Step();
  ASSERT_EQ(driver.failed().size(), 1u);
  EXPECT_EQ(driver.failed()[0].first, driver.Group(1));
  EXPECT_FALSE(driver.scheduler().has_unfinished());
}

// The engine's part for a beam group, without scores: once every beam of the group sampled in
// `output`, it finishes the group at max_tokens, else forks the single first sequence to the
// width and extends every beam by one token.
void AdvanceBeams(SchedulerDriver& driver, uint64_t group_id, const SchedulerOutput& output) {
  SequenceGroup* group = driver.scheduler().GetGroup(group_id);
  if (group == nullptr) return;
  size_t reported = 0;
  for (const ScheduledSequence& s : output.scheduled) {
    const Sequence* seq = driver.scheduler().GetSequence(s.seq_id);
    if (seq != nullptr && seq->group == group && s.sample) ++reported;
  }
  if (reported != group->seqs.size()) return;
  if (group->seqs[0]->num_generated_tokens() >= group->max_tokens) {
    ASSERT_TRUE(driver.scheduler().FinishGroup(group_id, SequenceStatus::kFinishedStopped).ok());
    return;
  }
  if (group->seqs.size() == 1) {
    for (int i = 1; i < group->num_samples; ++i) driver.Fork(group->seqs[0]->seq_id);
  }
  const std::vector<Sequence*> beams = group->seqs;
  for (Sequence* beam : beams) driver.AppendToken(beam->seq_id, 2);
}

// Two beam groups preempted by recomputation (one host block: too few to swap them) come back
// in one step: the older one's 8 tokens take most of the budget of 10, so the newer one is
// admitted with 2 tokens of budget and nothing scheduled (its beams run together or not at
// all), and holds no blocks. Next step it wants all 6 tokens (4 blocks, 2 free), is preempted
// again and "swapped out" with nothing to move (its tables are empty). ScheduleSwappedIn then
// takes it back counting one block per sequence (2 <= 2 free), but it must recompute 6 tokens
// in 4 blocks, and beams are never trimmed: CommitPlan's AllocateSlots fails its CHECK and the
// coordinator aborts. Written as an exit test so that the abort does not take the rest of this
// binary down: it passes once every request completes without one.
// Runs the scenario above to its end; the exit code says whether every request completed.
int RunBeamGroupsRecomputedTogether() {
  SchedulerConfig config =
      SwapConfig(/*num_blocks=*/8, /*block_size=*/2, /*num_host_blocks=*/1, PreemptionMode::kAuto);
  config.max_num_batched_tokens = 10;
  SchedulerDriver driver(config);
  PAGEDLLM_CHECK_OK(driver.Add(1, 6, 6));
  PAGEDLLM_CHECK_OK(driver.AddGroup(2, BeamSpec(2, 1, 6, /*width=*/2)));
  PAGEDLLM_CHECK_OK(driver.AddGroup(3, BeamSpec(3, 1, 3, /*width=*/2)));
  for (int step = 0; step < 80 && driver.scheduler().has_unfinished(); ++step) {
    const SchedulerOutput output = driver.Step();
    AdvanceBeams(driver, driver.Group(2), output);
    AdvanceBeams(driver, driver.Group(3), output);
  }
  return driver.scheduler().has_unfinished() ? 1 : 0;
}

TEST(SchedulerTest, SwappedInBeamGroupThatMustRecomputeDoesNotOverrunThePool) {
  EXPECT_EXIT(std::exit(RunBeamGroupsRecomputedTogether()), ::testing::ExitedWithCode(0), "");
}

// ---------------------------------------------------------------------------------------------
// Random workloads (one-sample, n-sample and beam requests; aborts; every preemption mode,
// prefix caching on and off, with and without swap space) against a model of the workers: their
// block tables and KV, applied from each output in the documented order. Every scheduled
// sequence's table must match the scheduler's, and its KV before `begin` must read back what
// its own tokens computed (the KV of position p models a hash of the tokens [0, p]), through
// forks, copies, cache hits, swaps and preemptions.

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

class WorkerMirror {
 public:
  explicit WorkerMirror(const SchedulerConfig& config)
      : block_size_(config.blocks.block_size),
        device_(config.blocks.num_blocks, std::vector<uint64_t>(block_size_, 0)),
        host_(std::max(1, config.blocks.num_host_blocks), std::vector<uint64_t>(block_size_, 0)) {}

  void Apply(const SchedulerOutput& output, const Scheduler& scheduler) {
    for (const SequenceFork& fork : output.forks) {
      ASSERT_TRUE(known_.contains(fork.parent_seq_id)) << "fork of unknown " << fork.parent_seq_id;
      ASSERT_TRUE(known_.insert(fork.child_seq_id).second);
      tables_[fork.child_seq_id] = tables_[fork.parent_seq_id];
    }
    for (uint64_t id : output.finished_seq_ids) {
      ASSERT_EQ(known_.erase(id), 1u) << "finished unknown " << id;
      tables_.erase(id);
    }
    for (uint64_t id : output.preempted_seq_ids) {
      ASSERT_TRUE(known_.contains(id)) << "preempted unknown " << id;
      tables_.erase(id);
    }
    for (const BlockSwap& swap : output.swap_out)
      host_[swap.host_block] = device_[swap.device_block];
    for (const BlockSwap& swap : output.swap_in)
      device_[swap.device_block] = host_[swap.host_block];
    for (const BlockCopy& copy : output.block_copies) {
      device_[copy.dst_block_id] = device_[copy.src_block_id];
    }
    for (const NewSequence& seq : output.new_sequences) {
      ASSERT_TRUE(known_.insert(seq.seq_id).second) << "new twice " << seq.seq_id;
    }
    for (const ScheduledSequence& s : output.scheduled) {
      ASSERT_TRUE(known_.contains(s.seq_id)) << "scheduled unknown " << s.seq_id;
      std::vector<int32_t>& table = tables_[s.seq_id];
      if (s.reset_block_table) {
        table = s.new_block_ids;
      } else {
        for (const BlockReplacement& r : s.replacements) {
          ASSERT_LT(r.table_index, static_cast<int>(table.size()));
          table[r.table_index] = r.block_id;
        }
        table.insert(table.end(), s.new_block_ids.begin(), s.new_block_ids.end());
      }
      ASSERT_EQ(table, scheduler.block_manager().table(s.seq_id)) << "sequence " << s.seq_id;
    }
    // The forward pass: what it reads must be this sequence's own KV; it writes the rest. A
    // placeholder (async scheduling) is the token the sequence sampled in the step before.
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.GetSequence(s.seq_id);
      const std::vector<int32_t>& table = tables_[s.seq_id];
      uint64_t kv = 0x5eed;
      for (int p = 0; p < s.end; ++p) {
        int32_t token = seq->token_ids[p];
        if (p >= s.begin) {
          ASSERT_EQ(s.token_ids[p - s.begin], token);
        }
        if (token == kPendingTokenId) {
          ASSERT_EQ(p, s.end - 1) << "step " << output.step_id << ": sequence " << s.seq_id
                                  << " has a placeholder before its last token";
          auto last = last_sampled_.find(s.seq_id);
          ASSERT_TRUE(last != last_sampled_.end() && last->second.first == output.step_id - 1)
              << "step " << output.step_id << ": sequence " << s.seq_id
              << " has a placeholder but sampled nothing in the step before";
          token = last->second.second;
        }
        kv = Mix(kv, static_cast<uint64_t>(token));
        std::vector<uint64_t>& block = device_[table[p / block_size_]];
        if (p < s.begin) {
          ASSERT_EQ(block[p % block_size_], kv)
              << "step " << output.step_id << ": sequence " << s.seq_id << " position " << p;
        } else {
          block[p % block_size_] = kv;
        }
      }
    }
  }
  // The tokens step `step_id` sampled, as the workers keep them for the placeholders of the next.
  void RecordSampled(uint64_t step_id, const absl::flat_hash_map<uint64_t, int32_t>& sampled) {
    for (const auto& [seq_id, token] : sampled) last_sampled_[seq_id] = {step_id, token};
  }

 private:
  const int32_t block_size_;
  std::vector<std::vector<uint64_t>> device_;  // [num_blocks][block_size]
  std::vector<std::vector<uint64_t>> host_;    // [num_host_blocks][block_size]
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> tables_;
  absl::flat_hash_set<uint64_t> known_;
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, int32_t>> last_sampled_;  // step, token
};

// async: the engine's async scheduling: every output that may run ahead does (RunAhead), and
// its tokens reach the scheduler only after the next output was scheduled and applied.
void RunRandomWorkload(uint32_t seed, bool async, SchedulerCounters* totals, int* num_failed,
                       int* num_ahead) {
  std::mt19937 rng(seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  SchedulerConfig config;
  config.blocks.block_size = uniform(0, 1) ? 2 : 4;
  config.blocks.num_blocks = uniform(6, 24);
  config.blocks.watermark = uniform(0, 2) == 0 ? 0.1 : 0.0;
  config.blocks.num_host_blocks = uniform(0, 2) == 0 ? 0 : uniform(1, 20);
  config.max_num_batched_tokens = uniform(4, 40);
  config.max_num_seqs = uniform(2, 8);
  config.max_model_len = 64;
  config.enable_prefix_caching = uniform(0, 1);
  config.preemption_mode = static_cast<PreemptionMode>(uniform(0, 2));
  SchedulerDriver driver(config);
  WorkerMirror workers(config);
  // A few prompts that requests share prefixes of (prefix-cache hits).
  std::vector<std::vector<int32_t>> prompts(3);
  for (std::vector<int32_t>& prompt : prompts) {
    prompt.resize(uniform(1, 20));
    for (int32_t& token : prompt) token = uniform(0, 3);
  }
  const int num_requests = uniform(4, 14);
  const int arrival = uniform(0, 3);  // 0: all at once
  std::vector<uint64_t> keys;         // of the requests AddGroup took
  std::vector<uint64_t> beam_keys;
  int added = 0;
  std::optional<std::pair<SchedulerOutput, absl::flat_hash_map<uint64_t, int32_t>>> ahead;
  const auto stop_now_and_then = [&](const SchedulerOutput& output) {  // stop tokens
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = driver.scheduler().GetSequence(s.seq_id);
      if (seq != nullptr && !seq->group->beam_search && s.sample && uniform(0, 15) == 0) {
        ASSERT_TRUE(driver.Finish(s.seq_id, SequenceStatus::kFinishedStopped).ok());
      }
    }
  };
  for (int iteration = 0; iteration < 600; ++iteration) {
    while (added < num_requests && uniform(0, arrival) == 0) {
      GroupSpec spec;
      spec.request_id = absl::StrCat("random-", added);
      spec.prompt_token_ids = prompts[uniform(0, 2)];
      spec.prompt_token_ids.resize(uniform(1, static_cast<int>(spec.prompt_token_ids.size())));
      for (int i = uniform(0, 6); i > 0; --i) spec.prompt_token_ids.push_back(uniform(0, 3));
      spec.max_tokens = uniform(1, 10);
      const int kind = uniform(0, 2);  // one sample, n samples, beams
      spec.num_samples = kind == 0 ? 1 : uniform(2, 3);
      spec.beam_search = kind == 2;
      const uint64_t key = static_cast<uint64_t>(added++);
      if (!driver.AddGroup(key, spec).ok()) continue;  // too large for this config
      keys.push_back(key);
      if (spec.beam_search) beam_keys.push_back(key);
    }
    if (uniform(0, 60) == 0 && !keys.empty()) {  // a client goes away
      const uint64_t key = keys[uniform(0, static_cast<int>(keys.size()) - 1)];
      if (driver.scheduler().GetGroup(driver.Group(key)) != nullptr) {
        ASSERT_TRUE(driver.scheduler()
                        .FinishGroup(driver.Group(key), SequenceStatus::kFinishedAborted)
                        .ok());
        driver.scheduler().CheckInvariants();
      }
    }
    if (!driver.scheduler().has_unfinished() && !ahead.has_value()) {
      if (added == num_requests) break;
      continue;
    }
    SchedulerOutput output = driver.Schedule();
    *num_failed += static_cast<int>(output.failed_groups.size());
    workers.Apply(output, driver.scheduler());
    if (::testing::Test::HasFatalFailure()) return;
    absl::flat_hash_map<uint64_t, int32_t> sampled;
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = driver.scheduler().GetSequence(s.seq_id);
      if (s.sample && !seq->group->beam_search) sampled[s.seq_id] = uniform(0, 3);
    }
    workers.RecordSampled(output.step_id, sampled);
    if (ahead.has_value()) {  // the step before's tokens arrive once this one is on its way
      driver.Done(ahead->first, ahead->second);
      stop_now_and_then(ahead->first);
      if (::testing::Test::HasFatalFailure()) return;
      ahead.reset();
    }
    if (async && driver.scheduler().CanRunAhead(output)) {
      driver.scheduler().RunAhead(output);
      driver.scheduler().CheckInvariants();
      ++*num_ahead;
      ahead.emplace(std::move(output), std::move(sampled));
      continue;
    }
    driver.Done(output, sampled);
    stop_now_and_then(output);
    if (::testing::Test::HasFatalFailure()) return;
    for (uint64_t key : beam_keys) AdvanceBeams(driver, driver.Group(key), output);
  }
  EXPECT_FALSE(driver.scheduler().has_unfinished())
      << driver.scheduler().num_running() << " running, " << driver.scheduler().num_swapped()
      << " swapped, " << driver.scheduler().num_waiting() << " waiting after 600 steps";
  EXPECT_EQ(driver.blocks().num_free_blocks(), config.blocks.num_blocks);
  EXPECT_EQ(driver.blocks().num_free_host_blocks(), config.blocks.num_host_blocks);
  const SchedulerCounters& counters = driver.scheduler().counters();
  totals->num_preemptions += counters.num_preemptions;
  totals->num_swapped_out += counters.num_swapped_out;
  totals->num_swapped_in += counters.num_swapped_in;
  totals->num_prefix_cache_hit_tokens += counters.num_prefix_cache_hit_tokens;
}

class RandomWorkloadTest : public ::testing::TestWithParam<bool> {};

TEST_P(RandomWorkloadTest, KeepsTheWorkersTablesAndKvConsistent) {
  const bool async = GetParam();
  SchedulerCounters totals;
  int num_failed = 0;
  int num_ahead = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    RunRandomWorkload(seed, async, &totals, &num_failed, &num_ahead);
    if (HasFatalFailure()) return;
  }
  // Every path was taken somewhere.
  EXPECT_GT(totals.num_preemptions, 0);
  EXPECT_GT(totals.num_swapped_out, 0);
  EXPECT_GT(totals.num_swapped_in, 0);
  EXPECT_GT(totals.num_prefix_cache_hit_tokens, 0);
  EXPECT_GT(num_failed, 0);
  if (async) {
    EXPECT_GT(num_ahead, 1000);
  } else {
    EXPECT_EQ(num_ahead, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(SchedulerTest, RandomWorkloadTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "AsyncScheduling" : "Synchronous";
                         });

// ---------------------------------------------------------------------------------------------
// Groups that can never fit fail instead of looping.

TEST(SchedulerTest, GroupAloneThatOutgrowsThePoolFails) {
  // 2 samples of a 20-token prompt, 8 tokens each: validation counts the shared prompt once
  // (7 + 3 blocks = 10), but a third sample forked by hand (as a beam search would) pushes
  // the group past the pool when it grows.
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.AddGroup(1, BeamSpec(1, 20, 8, /*width=*/2)).ok());
  driver.Step();
  const uint64_t first = driver.Id(1);
  driver.Fork(first);
  driver.Fork(first);  // a third beam: more than the width the group was validated for
  ExtendOwedBeams(driver, driver.Group(1));
  for (int step = 0; step < 20 && driver.failed().empty(); ++step) {
    driver.Step();
    ExtendOwedBeams(driver, driver.Group(1));
  }
  ASSERT_EQ(driver.failed().size(), 1u);
  EXPECT_EQ(driver.failed()[0].second.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(driver.failed()[0].second.message()),
              HasSubstr("more KV blocks with all 10 of the pool to itself"));
  EXPECT_FALSE(driver.scheduler().has_unfinished());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
}

using SchedulerDeathTest = ::testing::Test;

TEST_F(SchedulerDeathTest, ScheduleTwiceWithoutOnStepDoneAborts) {
  Scheduler scheduler(TestConfig(10, 4));
  scheduler.Schedule();  // nothing to do: no step id
  EXPECT_DEATH(scheduler.Schedule(), "Schedule\\(\\) before OnStepDone\\(\\) of step 0");
  scheduler.OnStepDone(SchedulerOutput(), {});
  ASSERT_TRUE(scheduler.AddGroup(MakeSpec(4, 3, 3)).ok());
  scheduler.Schedule();
  EXPECT_DEATH(scheduler.Schedule(), "Schedule\\(\\) before OnStepDone\\(\\) of step 1");
}

TEST_F(SchedulerDeathTest, OnStepDoneOfAnotherStepAborts) {
  Scheduler scheduler(TestConfig(10, 4));
  ASSERT_TRUE(scheduler.AddGroup(MakeSpec(4, 3, 3)).ok());
  SchedulerOutput output = scheduler.Schedule();
  ASSERT_EQ(output.step_id, 1u);
  output.step_id = 2;
  EXPECT_DEATH(scheduler.OnStepDone(output, {}),
               "OnStepDone of step 2 but the step in flight is 1");
}

TEST_F(SchedulerDeathTest, AppendTokenBeyondMaxTokensAborts) {
  Scheduler scheduler(TestConfig(10, 4));
  ASSERT_TRUE(scheduler.AddGroup(MakeSpec(4, 3, 1)).ok());
  SchedulerOutput output = scheduler.Schedule();
  scheduler.OnStepDone(output, {});  // owed its token
  scheduler.AppendToken(1, 9);       // the one token it may generate
  output = scheduler.Schedule();     // computes it
  scheduler.OnStepDone(output, {});
  EXPECT_DEATH(scheduler.AppendToken(1, 10), "already has max_tokens = 1 generated tokens");
  EXPECT_DEATH(scheduler.AppendToken(2, 10), "AppendToken to unknown sequence 2");
}

}  // namespace
}  // namespace pagedllm::coordinator
