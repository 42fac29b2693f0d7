// Randomized simulation of the scheduler against a mirror of what the workers would hold,
// and a measurement of Schedule()'s cost at 256 running sequences.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "coordinator/scheduler/scheduler.h"
#include "gtest/gtest.h"
#include "tests/coordinator/scheduler/scheduler_test_util.h"

namespace pagedllm::coordinator {
namespace {

using ::pagedllm::coordinator::testing::MakeSequence;

constexpr int32_t kGarbage = -7;  // what a dead sequence's in-flight step writes

// What the workers hold, rebuilt only from the diffs in SchedulerOutput: block tables, and
// a KV cache that stores, at each slot, the token whose KV would be there.
class WorkerMirror {
 public:
  WorkerMirror(int32_t num_blocks, int32_t block_size)
      : block_size_(block_size), kv_(num_blocks, std::vector<int32_t>(block_size, kGarbage)) {}

  // Applies the table changes of a step, in the order the workers would.
  void ApplyTableChanges(const SchedulerOutput& output) {
    for (uint64_t id : output.finished_seq_ids) {
      ASSERT_TRUE(known_.erase(id)) << "finished sequence " << id << " was never scheduled";
      tables_.erase(id);
    }
    for (uint64_t id : output.preempted_seq_ids) {
      ASSERT_TRUE(tables_.erase(id)) << "preempted sequence " << id << " had no table";
    }
    for (const BlockCopy& copy : output.block_copies)
      kv_[copy.dst_block_id] = kv_[copy.src_block_id];
    std::set<uint64_t> seen;
    for (const ScheduledSequence& s : output.scheduled) {
      ASSERT_TRUE(seen.insert(s.seq_id).second) << "sequence " << s.seq_id << " scheduled twice";
      ASSERT_EQ(s.is_new, !known_.count(s.seq_id)) << "sequence " << s.seq_id;
      known_.insert(s.seq_id);
      if (s.reset_block_table) {
        ASSERT_FALSE(tables_.count(s.seq_id)) << "sequence " << s.seq_id << " reset twice";
        tables_[s.seq_id].clear();
      }
      ASSERT_TRUE(tables_.count(s.seq_id)) << "sequence " << s.seq_id << " has no table";
      std::vector<int32_t>& table = tables_[s.seq_id];
      for (const BlockReplacement& r : s.replacements) table.at(r.table_index) = r.block_id;
      table.insert(table.end(), s.new_block_ids.begin(), s.new_block_ids.end());
    }
  }

  // The forward pass: writes the KV of token_ids[begin, end) of each sequence.
  void Write(const ScheduledSequence& s, const std::vector<int32_t>* token_ids) {
    const std::vector<int32_t>& table = tables_.at(s.seq_id);
    for (int p = s.begin; p < s.end; ++p) {
      kv_[table.at(p / block_size_)][p % block_size_] =
          token_ids == nullptr ? kGarbage : (*token_ids)[p];
    }
  }

  // Attention over positions [0, end) must see exactly the sequence's tokens.
  void ExpectReads(uint64_t seq_id, const std::vector<int32_t>& token_ids, int end) const {
    const std::vector<int32_t>& table = tables_.at(seq_id);
    for (int p = 0; p < end; ++p) {
      ASSERT_EQ(kv_[table.at(p / block_size_)][p % block_size_], token_ids[p])
          << "sequence " << seq_id << " position " << p;
    }
  }

  const std::map<uint64_t, std::vector<int32_t>>& tables() const { return tables_; }

 private:
  const int32_t block_size_;
  std::vector<std::vector<int32_t>> kv_;             // [num_blocks][block_size]
  std::map<uint64_t, std::vector<int32_t>> tables_;  // sequences with KV on the workers
  std::set<uint64_t> known_;                         // sequences the workers have state for
};

struct SimulationTotals {
  int64_t steps = 0;
  int64_t finished = 0;
  int64_t preemptions = 0;
  int64_t resumes = 0;         // re-admissions after preemption
  int64_t partial_chunks = 0;  // prefill steps that did not reach the end
  int64_t aborted_in_flight = 0;
  int64_t rejected = 0;
};

void RunSimulation(uint32_t seed, int num_steps, SimulationTotals* totals) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };

  SchedulerConfig config;
  config.blocks.block_size = std::vector<int>{1, 2, 4, 8, 16}[uniform(0, 4)];
  config.blocks.num_blocks = uniform(4, 40);
  config.blocks.watermark = chance(0.5) ? 0.0 : 0.1;
  config.max_num_batched_tokens = uniform(1, 64);
  config.max_num_seqs = uniform(1, 12);
  config.max_model_len = uniform(8, 200);
  config.max_waiting = uniform(1, 16);
  const int32_t block_size = config.blocks.block_size;
  const int64_t capacity =
      int64_t{config.blocks.num_blocks -
              static_cast<int32_t>(config.blocks.watermark * config.blocks.num_blocks)} *
      block_size;
  const int max_prompt = static_cast<int>(std::min<int64_t>(capacity, config.max_model_len));

  Scheduler scheduler(config);
  WorkerMirror mirror(config.blocks.num_blocks, block_size);
  uint64_t next_id = 1;
  std::vector<uint64_t> live;  // ids added and not finished

  auto finish = [&](uint64_t id, SequenceStatus reason) {
    absl::StatusOr<std::unique_ptr<Sequence>> seq = scheduler.Finish(id, reason);
    ASSERT_TRUE(seq.ok()) << seq.status();
    scheduler.CheckInvariants();
    live.erase(std::find(live.begin(), live.end(), id));
    ++totals->finished;
  };

  for (int step = 0;; ++step) {
    const bool arrivals_open = step < num_steps;
    if (!arrivals_open && !scheduler.has_unfinished()) break;
    ASSERT_LT(step, num_steps + 100000) << "the queue does not drain";

    // Arrivals, some of them bad or beyond the queue.
    for (int n = arrivals_open && chance(0.3) ? uniform(1, 3) : 0; n > 0; --n) {
      const int prompt = uniform(1, max_prompt + 2);
      const int max_tokens = uniform(1, std::max(1, max_prompt / 2));
      const bool never =
          prompt + max_tokens > config.max_model_len ||
          scheduler.block_manager().CanAllocate(prompt + max_tokens) == AllocationCheck::kNever;
      const bool full = scheduler.num_waiting() >= config.max_waiting;
      const absl::Status status = scheduler.AddSequence(MakeSequence(next_id, prompt, max_tokens));
      scheduler.CheckInvariants();
      if (never) {
        ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        ++totals->rejected;
      } else if (full) {
        ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
        ++totals->rejected;
      } else {
        ASSERT_TRUE(status.ok()) << status;
        live.push_back(next_id);
      }
      ++next_id;
    }
    // Aborts between steps.
    if (!live.empty() && chance(0.03)) {
      finish(live[uniform(0, static_cast<int>(live.size()) - 1)], SequenceStatus::kFinishedAborted);
    }

    const SchedulerOutput output = scheduler.Schedule();
    scheduler.CheckInvariants();
    ++totals->steps;
    totals->preemptions += static_cast<int64_t>(output.preempted_seq_ids.size());
    ASSERT_LE(output.num_scheduled_tokens, config.max_num_batched_tokens);
    ASSERT_LE(static_cast<int>(output.scheduled.size()), config.max_num_seqs);
    if (scheduler.has_unfinished()) {
      ASSERT_FALSE(output.empty()) << "a step with no progress";
    }
    int sum = 0;
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.Get(s.seq_id);
      ASSERT_NE(seq, nullptr);
      ASSERT_EQ(s.begin, seq->num_computed_tokens);
      ASSERT_LT(s.begin, s.end);
      ASSERT_LE(s.end, seq->num_tokens());
      ASSERT_EQ(s.sample, s.end == seq->num_tokens());
      if (!s.sample) ++totals->partial_chunks;
      if (s.reset_block_table && !s.is_new) ++totals->resumes;
      sum += s.end - s.begin;
    }
    ASSERT_EQ(sum, output.num_scheduled_tokens);
    mirror.ApplyTableChanges(output);
    if (::testing::Test::HasFatalFailure()) return;
    for (const auto& [id, table] : mirror.tables()) {
      ASSERT_TRUE(scheduler.block_manager().HasTable(id)) << "workers hold a table for " << id;
      ASSERT_EQ(table, scheduler.block_manager().table(id)) << "sequence " << id;
    }
    ASSERT_EQ(static_cast<int>(mirror.tables().size()), scheduler.num_running());

    // Sometimes the client goes away while the step runs.
    std::set<uint64_t> aborted_in_flight;
    if (!output.empty() && chance(0.05)) {
      const uint64_t id =
          output.scheduled[uniform(0, static_cast<int>(output.scheduled.size()) - 1)].seq_id;
      finish(id, SequenceStatus::kFinishedAborted);
      aborted_in_flight.insert(id);
      ++totals->aborted_in_flight;
    }

    // The forward pass, then what attention reads.
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.Get(s.seq_id);
      mirror.Write(s, seq == nullptr ? nullptr : &seq->token_ids);
    }
    absl::flat_hash_map<uint64_t, int32_t> sampled;
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.Get(s.seq_id);
      if (seq == nullptr) continue;
      mirror.ExpectReads(s.seq_id, seq->token_ids, s.end);
      if (::testing::Test::HasFatalFailure()) return;
      if (s.sample) sampled[s.seq_id] = uniform(0, 50000);
    }
    scheduler.OnStepDone(output, sampled);
    scheduler.CheckInvariants();

    // Stop conditions, the caller's.
    for (const auto& [id, token] : sampled) {
      const Sequence* seq = scheduler.Get(id);
      if (seq->num_generated_tokens() == seq->max_tokens) {
        finish(id, SequenceStatus::kFinishedLength);
      } else if (token % 97 == 0) {
        finish(id, SequenceStatus::kFinishedStopped);
      }
    }
  }
  // Everything came back; one more step tells the workers, after which they hold nothing.
  EXPECT_EQ(scheduler.block_manager().num_free_blocks(), config.blocks.num_blocks);
  EXPECT_EQ(scheduler.block_manager().num_tables(), 0);
  const SchedulerOutput last = scheduler.Schedule();
  EXPECT_TRUE(last.empty());
  mirror.ApplyTableChanges(last);
  scheduler.OnStepDone(last, {});
  EXPECT_TRUE(mirror.tables().empty());
}

TEST(SchedulerSimulationTest, RandomArrivalsAbortsAndATinyPoolDrainToEmpty) {
  SimulationTotals totals;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    RunSimulation(seed, /*num_steps=*/3000, &totals);
    if (HasFatalFailure()) return;
  }
  std::printf(
      "simulated %lld steps: %lld finished, %lld rejected, %lld preemptions, %lld resumes, "
      "%lld partial prefill chunks, %lld aborted in flight\n",
      static_cast<long long>(totals.steps), static_cast<long long>(totals.finished),
      static_cast<long long>(totals.rejected), static_cast<long long>(totals.preemptions),
      static_cast<long long>(totals.resumes), static_cast<long long>(totals.partial_chunks),
      static_cast<long long>(totals.aborted_in_flight));
  // The seeds must have exercised the hard paths.
  EXPECT_GT(totals.preemptions, 100);
  EXPECT_GT(totals.resumes, 100);
  EXPECT_GT(totals.partial_chunks, 100);
  EXPECT_GT(totals.aborted_in_flight, 10);
  EXPECT_GT(totals.rejected, 10);
}

// Cost of Schedule() and OnStepDone() with 256 sequences decoding (prompt 128 tokens, a new
// block every 16 steps). Prints the figure; asserts only what was scheduled.
TEST(SchedulerSimulationTest, ScheduleCostAt256RunningSequences) {
  SchedulerConfig config;
  config.blocks.num_blocks = 256 * 80;
  config.blocks.block_size = 16;
  Scheduler scheduler(config);
  for (uint64_t id = 0; id < 256; ++id) {
    ASSERT_TRUE(scheduler.AddSequence(MakeSequence(id, 128, 1024)).ok());
  }
  absl::flat_hash_map<uint64_t, int32_t> sampled;
  for (uint64_t id = 0; id < 256; ++id) sampled[id] = 1;
  // Prefill: 256 * 128 tokens at 2048 per step.
  while (scheduler.num_waiting() > 0 ||
         scheduler.Get(255)->num_computed_tokens < scheduler.Get(255)->num_prompt_tokens) {
    const SchedulerOutput output = scheduler.Schedule();
    scheduler.OnStepDone(output, sampled);
  }
  constexpr int kSteps = 1000;
  using Clock = std::chrono::steady_clock;
  Clock::duration schedule_time{}, done_time{};
  for (int step = 0; step < kSteps; ++step) {
    const Clock::time_point t0 = Clock::now();
    const SchedulerOutput output = scheduler.Schedule();
    const Clock::time_point t1 = Clock::now();
    scheduler.OnStepDone(output, sampled);
    const Clock::time_point t2 = Clock::now();
    schedule_time += t1 - t0;
    done_time += t2 - t1;
    ASSERT_EQ(output.scheduled.size(), 256u);
    ASSERT_EQ(output.num_scheduled_tokens, 256);
  }
  scheduler.CheckInvariants();
  auto us_per_step = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count() / kSteps;
  };
  std::printf("256 running sequences, decode: Schedule() %.2f us/step, OnStepDone() %.2f us/step\n",
              us_per_step(schedule_time), us_per_step(done_time));
}

}  // namespace
}  // namespace pagedllm::coordinator
