// StepState, the worker's mirror of the coordinator's sequences: the order a step is applied in
// (forks, finished, preempted, copies, new sequences, table changes), the batch it yields, and
// every inconsistency refused with a message naming it.
#include "worker/step_state.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

namespace wv1 = pagedllm::worker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kBlocks = 16;
constexpr int kBlockSize = 4;
constexpr int kVocab = 100;

wv1::SamplingConfig Greedy(uint64_t seed = 7) {
  wv1::SamplingConfig config;
  config.set_temperature(0.0f);
  config.set_top_p(1.0f);
  config.set_seed(seed);
  config.set_num_top_logprobs(-1);
  return config;
}

wv1::SequenceStep* AddStep(wv1::StepInstruction* step, uint64_t seq_id, int first,
                           std::vector<int32_t> tokens, std::vector<int32_t> new_blocks, bool reset,
                           bool sample) {
  wv1::SequenceStep* s = step->add_sequences();
  s->set_seq_id(seq_id);
  s->set_first_position(first);
  for (int32_t t : tokens) s->add_token_ids(t);
  for (int32_t b : new_blocks) s->add_new_block_ids(b);
  s->set_reset_block_table(reset);
  s->set_sample(sample);
  return s;
}

class StepStateTest : public ::testing::Test {
 protected:
  absl::Status Apply(const wv1::StepInstruction& step) { return state_.Apply(step, &batch_); }
  wv1::StepInstruction Next() {
    wv1::StepInstruction step;
    step.set_step_id(state_.last_step_id() + 1);
    return step;
  }
  // Sequence 1: a 6-token prompt in blocks 3, 5, computed and sampled.
  void StartSequenceOne() {
    wv1::StepInstruction step = Next();
    wv1::NewSequence* seq = step.add_new_sequences();
    seq->set_seq_id(1);
    *seq->mutable_sampling() = Greedy();
    AddStep(&step, 1, 0, {10, 11, 12, 13, 14, 15}, {3, 5}, /*reset=*/true, /*sample=*/true);
    ASSERT_TRUE(Apply(step).ok());
  }

  StepState state_{kBlocks, kBlockSize, kVocab};
  HostBatch batch_;
};

TEST_F(StepStateTest, NewSequenceYieldsItsBatch) {
  StartSequenceOne();
  EXPECT_THAT(batch_.token_ids, ElementsAre(10, 11, 12, 13, 14, 15));
  EXPECT_THAT(batch_.positions, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(batch_.slot_mapping, ElementsAre(12, 13, 14, 15, 20, 21));
  EXPECT_THAT(batch_.block_tables, ElementsAre(3, 5));
  EXPECT_THAT(batch_.query_start, ElementsAre(0, 6));
  EXPECT_THAT(batch_.context_lens, ElementsAre(6));
  EXPECT_THAT(batch_.sample_rows, ElementsAre(5));
  EXPECT_THAT(batch_.sample_seq_ids, ElementsAre(1u));
  EXPECT_THAT(batch_.sample_top_logprobs, ElementsAre(-1));
  EXPECT_TRUE(batch_.all_greedy);
  EXPECT_EQ(batch_.max_query_len, 6);
  EXPECT_THAT(state_.block_table(1), ElementsAre(3, 5));
  EXPECT_EQ(state_.num_sequences(), 1);
}

TEST_F(StepStateTest, SampledRowsSayHowTheyAreSampled) {
  StartSequenceOne();  // greedy, no logprobs
  wv1::StepInstruction step = Next();
  wv1::NewSequence* two = step.add_new_sequences();
  two->set_seq_id(2);
  wv1::SamplingConfig with_logprobs = Greedy();
  with_logprobs.set_num_top_logprobs(3);
  *two->mutable_sampling() = with_logprobs;
  AddStep(&step, 2, 0, {20, 21, 22}, {7}, /*reset=*/true, /*sample=*/true);
  AddStep(&step, 1, 6, {16}, {}, false, true);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_THAT(batch_.sample_top_logprobs, ElementsAre(3, -1));
  EXPECT_FALSE(batch_.all_greedy);  // logprobs need the device sampler
  EXPECT_EQ(batch_.max_query_len, 3);

  step = Next();
  AddStep(&step, 1, 7, {17}, {}, false, true);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_TRUE(batch_.all_greedy);
  EXPECT_EQ(batch_.max_query_len, 1);
}

TEST_F(StepStateTest, ForkCopiesTheParentsTableBeforeTheStepChangesIt) {
  StartSequenceOne();
  wv1::StepInstruction step = Next();
  wv1::SequenceFork* fork = step.add_forks();
  fork->set_parent_seq_id(1);
  fork->set_child_seq_id(2);
  *fork->mutable_sampling() = Greedy(8);
  // Both write position 6 into block 5, shared: the child gets a private copy (block 9).
  wv1::BlockCopy* copy = step.add_block_copies();
  copy->set_src(5);
  copy->set_dst(9);
  AddStep(&step, 1, 6, {16}, {}, false, true);
  wv1::SequenceStep* child = AddStep(&step, 2, 6, {17}, {}, false, true);
  wv1::BlockReplacement* replacement = child->add_replacements();
  replacement->set_index(1);
  replacement->set_block_id(9);
  ASSERT_TRUE(Apply(step).ok()) << Apply(step);
  EXPECT_THAT(state_.block_table(1), ElementsAre(3, 5));
  EXPECT_THAT(state_.block_table(2), ElementsAre(3, 9));
  EXPECT_THAT(batch_.block_copies, ElementsAre(5, 9));
  EXPECT_THAT(batch_.slot_mapping, ElementsAre(22, 38));
  EXPECT_EQ(state_.sampling(2).seed, 8u);
  EXPECT_EQ(state_.num_tables(), 2);
}

TEST_F(StepStateTest, PreemptedSequenceKeepsItsSamplingStateButNeedsAReset) {
  StartSequenceOne();
  state_.NextSampleParams(1);  // one draw counted
  wv1::StepInstruction step = Next();
  step.add_preempted_sequence_ids(1);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_TRUE(state_.knows(1));
  EXPECT_TRUE(state_.block_table(1).empty());
  EXPECT_EQ(state_.num_tables(), 0);

  step = Next();
  AddStep(&step, 1, 0, {10, 11, 12, 13, 14, 15, 16}, {7, 8}, /*reset=*/false, true);
  const absl::Status no_reset = Apply(step);
  EXPECT_EQ(no_reset.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_reset.message(), HasSubstr("was preempted and comes back without a table reset"));
}

TEST_F(StepStateTest, ResumedSequenceContinuesItsDraws) {
  StartSequenceOne();
  EXPECT_EQ(state_.NextSampleParams(1).draw_lo, 0u);
  wv1::StepInstruction step = Next();
  step.add_preempted_sequence_ids(1);
  AddStep(&step, 1, 0, {10, 11, 12, 13, 14, 15, 16}, {7, 8}, /*reset=*/true, true);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_THAT(state_.block_table(1), ElementsAre(7, 8));
  EXPECT_EQ(state_.NextSampleParams(1).draw_lo, 1u);
}

TEST_F(StepStateTest, FinishedSequencesAreForgotten) {
  StartSequenceOne();
  wv1::StepInstruction step = Next();
  step.add_finished_sequence_ids(1);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_FALSE(state_.knows(1));
  EXPECT_EQ(state_.num_sequences(), 0);
  step = Next();
  AddStep(&step, 1, 6, {16}, {}, false, true);
  EXPECT_THAT(Apply(step).message(), HasSubstr("unknown sequence 1"));
}

TEST_F(StepStateTest, RefusesWhatDoesNotFit) {
  StartSequenceOne();
  wv1::StepInstruction gap;
  gap.set_step_id(state_.last_step_id() + 2);
  EXPECT_THAT(Apply(gap).message(), HasSubstr("does not follow step"));

  wv1::StepInstruction step = Next();
  wv1::SequenceFork* fork = step.add_forks();
  fork->set_parent_seq_id(42);
  fork->set_child_seq_id(43);
  EXPECT_THAT(Apply(step).message(), HasSubstr("fork of sequence 42"));

  step = Next();
  fork = step.add_forks();
  fork->set_parent_seq_id(1);
  fork->set_child_seq_id(1);
  *fork->mutable_sampling() = Greedy();
  EXPECT_THAT(Apply(step).message(), HasSubstr("sequence 1 is not new"));

  step = Next();
  step.add_preempted_sequence_ids(77);
  EXPECT_THAT(Apply(step).message(), HasSubstr("preempted sequence 77 is unknown"));

  step = Next();
  wv1::NewSequence* seq = step.add_new_sequences();
  seq->set_seq_id(5);
  *seq->mutable_sampling() = Greedy();
  seq->mutable_sampling()->set_top_p(1.5f);
  EXPECT_THAT(Apply(step).message(), HasSubstr("top_p must be in (0, 1], got 1.5"));

  step = Next();
  AddStep(&step, 1, 6, {16, 17, 18}, {}, false, true);  // needs a third block
  EXPECT_THAT(Apply(step).message(), HasSubstr("do not fit its 2 blocks"));

  step = Next();
  AddStep(&step, 1, 6, {kVocab}, {}, false, true);
  EXPECT_THAT(Apply(step).message(), HasSubstr("token id 100 outside [0, 100)"));

  step = Next();
  AddStep(&step, 1, 6, {16}, {kBlocks}, false, true);
  EXPECT_THAT(Apply(step).message(), HasSubstr("block 16 outside [0, 16)"));

  step = Next();
  wv1::BlockCopy* copy = step.add_block_copies();
  copy->set_src(-1);
  copy->set_dst(2);
  EXPECT_THAT(Apply(step).message(), HasSubstr("block copy -1 -> 2 is outside [0, 16)"));
}

TEST_F(StepStateTest, PlaceholderIsFilledFromItsSampleRowOfTheStepBefore) {
  StartSequenceOne();  // step 1 samples sequence 1 after position 5 (sample row 0)
  EXPECT_TRUE(batch_.placeholder_fills.empty());
  // Step 2: sequence 2 arrives (its prompt sampled at row 0), sequence 1 computes its
  // placeholder and samples at row 1.
  wv1::StepInstruction step = Next();
  wv1::NewSequence* two = step.add_new_sequences();
  two->set_seq_id(2);
  *two->mutable_sampling() = Greedy();
  AddStep(&step, 2, 0, {20, 21}, {7}, /*reset=*/true, /*sample=*/true);
  AddStep(&step, 1, 6, {kSampledTokenPlaceholder}, {}, false, true);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_THAT(batch_.token_ids, ElementsAre(20, 21, 0));  // 0 until the device fills it
  EXPECT_THAT(batch_.positions, ElementsAre(0, 1, 6));
  EXPECT_THAT(batch_.slot_mapping, ElementsAre(28, 29, 5 * kBlockSize + 2));
  EXPECT_THAT(batch_.placeholder_fills, ElementsAre(2, 0));  // token 2 <- step 1's row 0
  EXPECT_THAT(batch_.sample_seq_ids, ElementsAre(2u, 1u));

  // Step 3: both placeholders, each from its own row of step 2.
  step = Next();
  AddStep(&step, 1, 7, {kSampledTokenPlaceholder}, {}, false, /*sample=*/false);
  AddStep(&step, 2, 2, {kSampledTokenPlaceholder}, {}, false, true);
  ASSERT_TRUE(Apply(step).ok());
  EXPECT_THAT(batch_.token_ids, ElementsAre(0, 0));
  EXPECT_THAT(batch_.placeholder_fills, ElementsAre(0, 1, 1, 0));

  // Sequence 1 sampled nothing in step 3: step 4 cannot stand for it.
  step = Next();
  AddStep(&step, 1, 8, {kSampledTokenPlaceholder}, {6}, false, true);
  EXPECT_THAT(Apply(step).message(),
              HasSubstr("sequence 1 computes the token it sampled in step 3 (token id -1), but it "
                        "sampled none there"));

  // Sequence 2 sampled in step 3, two steps back from step 5: stale.
  ASSERT_TRUE(Apply(Next()).ok());  // step 5: nothing
  step = Next();                    // step 6
  AddStep(&step, 2, 3, {kSampledTokenPlaceholder}, {}, false, true);
  EXPECT_THAT(Apply(step).message(), HasSubstr("in step 5 (token id -1)"));
}

TEST_F(StepStateTest, OnlyTheLastTokenMayBeAPlaceholder) {
  StartSequenceOne();
  wv1::StepInstruction step = Next();
  AddStep(&step, 1, 6, {kSampledTokenPlaceholder, 5}, {9}, false, true);
  EXPECT_THAT(Apply(step).message(), HasSubstr("token id -1 outside [0, 100)"));
}

}  // namespace
}  // namespace pagedllm::worker
