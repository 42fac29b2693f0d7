#include "coordinator/scheduler/scheduler.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/scheduler/scheduler_test_util.h"

namespace pagedllm::coordinator {
namespace {

using ::pagedllm::coordinator::testing::FindScheduled;
using ::pagedllm::coordinator::testing::MakeSequence;
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
  EXPECT_EQ(prefill.step_id, 0u);
  ASSERT_EQ(prefill.scheduled.size(), 1u);
  const ScheduledSequence& s = prefill.scheduled[0];
  EXPECT_EQ(s.seq_id, 1u);
  EXPECT_EQ(s.begin, 0);
  EXPECT_EQ(s.end, 10);
  EXPECT_TRUE(s.sample);
  EXPECT_TRUE(s.is_new);
  EXPECT_TRUE(s.reset_block_table);
  EXPECT_THAT(s.new_block_ids, ElementsAre(0, 1, 2));  // ceil(10 / 4)
  EXPECT_EQ(prefill.num_scheduled_tokens, 10);
  EXPECT_EQ(driver.scheduler().num_running(), 1);
  driver.Done(prefill);
  const Sequence* seq = driver.scheduler().Get(1);
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
    EXPECT_FALSE(d.is_new);
    EXPECT_FALSE(d.reset_block_table);
    EXPECT_EQ(d.new_block_ids, expected_new_blocks[step]);
    driver.Done(decode);
  }
  // The driver finished it at max_tokens: all blocks are back, and the workers hear of it.
  EXPECT_EQ(driver.scheduler().Get(1), nullptr);
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
    EXPECT_EQ(driver.scheduler().Get(1)->num_generated_tokens(), step == 2 ? 1 : 0);
    EXPECT_EQ(driver.scheduler().Get(1)->num_computed_tokens, expected_end[step]);
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
  EXPECT_EQ(driver.scheduler().Get(1)->num_tokens(), 6);
  EXPECT_EQ(driver.scheduler().Get(2)->num_tokens(), 7);
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
    EXPECT_EQ(FindScheduled(output, 3), nullptr);
    EXPECT_EQ(driver.scheduler().num_running(), 2);
    EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  }
  ASSERT_TRUE(driver.Finish(1, SequenceStatus::kFinishedStopped).ok());
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_EQ(output.scheduled[0].seq_id, 2u);
  EXPECT_EQ(output.scheduled[1].seq_id, 3u);
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
    EXPECT_EQ(output.scheduled[0].seq_id, 1u);
    EXPECT_EQ(driver.scheduler().num_waiting(), 2);
  }
  ASSERT_TRUE(driver.Finish(1, SequenceStatus::kFinishedStopped).ok());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
  SchedulerOutput output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 2u);
  EXPECT_EQ(output.scheduled[0].seq_id, 2u);
  EXPECT_EQ(output.scheduled[1].seq_id, 3u);
  EXPECT_THAT(output.finished_seq_ids, ElementsAre(1u));
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
  EXPECT_EQ(driver.blocks().table(1).size(), 6u);
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
  const std::vector<int32_t> tokens_before = driver.scheduler().Get(2)->token_ids;
  ASSERT_EQ(tokens_before.size(), 13u);

  // Position 12 of sequence 1 needs a fourth block: sequence 2 (newest) is preempted.
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(2u));
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, 1u);
  EXPECT_EQ(output.scheduled[0].new_block_ids.size(), 1u);
  const Sequence* preempted = driver.scheduler().Get(2);
  EXPECT_EQ(preempted->status, SequenceStatus::kPreempted);
  EXPECT_EQ(preempted->num_computed_tokens, 0);
  EXPECT_EQ(preempted->token_ids, tokens_before);  // generated tokens kept
  EXPECT_FALSE(driver.blocks().HasTable(2));
  EXPECT_EQ(driver.scheduler().num_preemptions(), 1);
  driver.Done(output);

  // 1 runs alone to its end; then 2 comes back and recomputes prompt + generated tokens.
  const ScheduledSequence* resumed = nullptr;
  SchedulerOutput resume_step;
  for (int step = 0; step < 20 && resumed == nullptr; ++step) {
    resume_step = driver.Schedule();
    EXPECT_THAT(resume_step.preempted_seq_ids, IsEmpty());
    resumed = FindScheduled(resume_step, 2);
    if (resumed == nullptr) driver.Done(resume_step);
  }
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(driver.scheduler().Get(1), nullptr);  // finished at max_tokens
  EXPECT_EQ(resumed->begin, 0);
  EXPECT_EQ(resumed->end, 13);
  EXPECT_TRUE(resumed->sample);
  EXPECT_TRUE(resumed->reset_block_table);
  EXPECT_FALSE(resumed->is_new);
  EXPECT_EQ(resumed->new_block_ids.size(), 4u);
  driver.Done(resume_step);
  const Sequence* seq = driver.scheduler().Get(2);
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
  EXPECT_EQ(output.scheduled[0].seq_id, 1u);
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(2u));
  EXPECT_EQ(driver.scheduler().num_running(), 1);
  EXPECT_EQ(driver.scheduler().num_waiting(), 1);
  EXPECT_EQ(driver.scheduler().Get(2)->num_tokens(), 9);
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
    EXPECT_EQ(FindScheduled(output, 3), nullptr);
  }
  // Position 12 of 1 preempts 2, which frees 3 blocks: 3 would fit, but not in this step.
  SchedulerOutput output = driver.Step();
  EXPECT_THAT(output.preempted_seq_ids, ElementsAre(2u));
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 2);
  // Nor in the next: 2 is at the head of the queue again and needs 4 blocks.
  output = driver.Step();
  ASSERT_EQ(output.scheduled.size(), 1u);
  EXPECT_EQ(output.scheduled[0].seq_id, 1u);
  EXPECT_EQ(driver.scheduler().num_waiting(), 2);
}

TEST(SchedulerTest, AbortAndFinishFreeBlocksAtOnce) {
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.Add(1, 8, 10).ok());
  ASSERT_TRUE(driver.Add(2, 8, 10).ok());
  driver.Step();
  ASSERT_TRUE(driver.Add(3, 39, 1).ok());  // waits: needs all 10 blocks
  EXPECT_EQ(driver.blocks().num_free_blocks(), 6);

  ASSERT_TRUE(driver.Finish(1, SequenceStatus::kFinishedAborted).ok());
  EXPECT_EQ(driver.blocks().num_free_blocks(), 8);
  EXPECT_EQ(driver.scheduler().Get(1), nullptr);
  EXPECT_EQ(driver.scheduler().Abort(1).status().code(), absl::StatusCode::kNotFound);
  // A waiting sequence the workers never saw: freed, but not announced.
  ASSERT_TRUE(driver.Finish(3, SequenceStatus::kFinishedAborted).ok());
  EXPECT_EQ(driver.scheduler().num_waiting(), 0);

  // Aborting while its step is in flight: blocks back at once, OnStepDone skips it.
  SchedulerOutput output = driver.Schedule();
  EXPECT_THAT(output.finished_seq_ids, ElementsAre(1u));
  ASSERT_NE(FindScheduled(output, 2), nullptr);
  absl::StatusOr<std::unique_ptr<Sequence>> aborted = driver.scheduler().Abort(2);
  ASSERT_TRUE(aborted.ok());
  EXPECT_EQ((*aborted)->status, SequenceStatus::kFinishedAborted);
  EXPECT_EQ((*aborted)->num_tokens(), 9);
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
  driver.scheduler().CheckInvariants();
  driver.Done(output);
  SchedulerOutput last = driver.Step();
  EXPECT_TRUE(last.empty());
  EXPECT_THAT(last.finished_seq_ids, ElementsAre(2u));
  EXPECT_FALSE(driver.scheduler().has_unfinished());
}

TEST(SchedulerTest, FinishHandsBackTheSequenceWithItsTokens) {
  SchedulerDriver driver(TestConfig(10, 4));
  ASSERT_TRUE(driver.Add(7, 3, 10).ok());
  driver.Step();
  driver.Step();
  absl::StatusOr<std::unique_ptr<Sequence>> seq =
      driver.scheduler().Finish(7, SequenceStatus::kFinishedStopped);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ((*seq)->status, SequenceStatus::kFinishedStopped);
  EXPECT_EQ((*seq)->request_id, "request-7");
  EXPECT_THAT((*seq)->token_ids, ElementsAre(7000, 7001, 7002, 500000, 500001));
  EXPECT_EQ(driver.blocks().num_free_blocks(), 10);
}

TEST(SchedulerTest, AddSequenceRejectsWhatCanNeverRun) {
  SchedulerConfig config = TestConfig(/*num_blocks=*/100, /*block_size=*/16);
  config.max_model_len = 8192;
  config.max_waiting = 2;
  Scheduler scheduler(config);

  absl::Status status = scheduler.AddSequence(MakeSequence(1, 9000, 16));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "prompt has 9000 tokens, max_model_len is 8192");

  status = scheduler.AddSequence(MakeSequence(1, 100, 8100));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "prompt has 100 tokens and max_tokens is 8100: 8200 tokens exceed max_model_len 8192");

  status = scheduler.AddSequence(MakeSequence(1, 1000, 1000));  // 125 blocks > 100
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("2000 tokens need 125 blocks of 16 tokens, but the KV cache has 100"));

  EXPECT_EQ(scheduler.AddSequence(MakeSequence(1, 0, 16)).message(), "prompt is empty");
  EXPECT_EQ(scheduler.AddSequence(MakeSequence(1, 10, 0)).message(),
            "max_tokens must be at least 1, got 0");

  ASSERT_TRUE(scheduler.AddSequence(MakeSequence(1, 1500, 100)).ok());  // exactly 100 blocks
  EXPECT_EQ(scheduler.AddSequence(MakeSequence(1, 10, 10)).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(scheduler.AddSequence(MakeSequence(2, 10, 10)).ok());
  status = scheduler.AddSequence(MakeSequence(3, 10, 10));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "waiting queue is full (2 sequences)");
  // Bad input is bad input even under load.
  EXPECT_EQ(scheduler.AddSequence(MakeSequence(3, 9000, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.num_waiting(), 2);
  scheduler.CheckInvariants();
}

TEST(SchedulerTest, StepIdsCountUpWithoutGaps) {
  SchedulerDriver driver(TestConfig(10, 4));
  for (uint64_t step = 0; step < 3; ++step) EXPECT_EQ(driver.Step().step_id, step);
}

using SchedulerDeathTest = ::testing::Test;

TEST_F(SchedulerDeathTest, ScheduleTwiceWithoutOnStepDoneAborts) {
  Scheduler scheduler(TestConfig(10, 4));
  scheduler.Schedule();
  EXPECT_DEATH(scheduler.Schedule(), "Schedule\\(\\) before OnStepDone\\(\\) of step 0");
}

TEST_F(SchedulerDeathTest, MissingSampledTokenAborts) {
  Scheduler scheduler(TestConfig(10, 4));
  ASSERT_TRUE(scheduler.AddSequence(MakeSequence(4, 3, 3)).ok());
  SchedulerOutput output = scheduler.Schedule();
  EXPECT_DEATH(scheduler.OnStepDone(output, {}), "no sampled token for sequence 4 in step 0");
}

}  // namespace
}  // namespace pagedllm::coordinator
