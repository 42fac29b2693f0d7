// Randomized simulation of the scheduler driven like the engine drives it (n-sample groups,
// beam-search forks and prunes, prefix-cache hits, preemption by swap and by recompute, aborts
// at any time), with every step encoded for the workers (EncodeStep) and applied to a real
// worker StepState. After every step the worker's mirror must equal the coordinator's view:
// the same known sequences, the same block tables; and a model of the device and host KV
// memory, moved by the step's swaps and copies and written by its forward pass, must read back
// exactly each sequence's tokens. Plus a measurement of Schedule()'s cost at 256 sequences.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/worker_link/grpc_step_executor.h"
#include "gtest/gtest.h"
#include "worker/step_state.h"

namespace pagedllm::coordinator {
namespace {

constexpr int32_t kGarbage = -7;  // what a dead sequence's in-flight step writes
constexpr int kVocab = 100000;

// Device and host KV memory: at each slot, the token whose KV would be there.
class KvMemory {
 public:
  KvMemory(int32_t num_blocks, int32_t num_host_blocks, int32_t block_size)
      : block_size_(block_size),
        device_(num_blocks, std::vector<int32_t>(block_size, kGarbage)),
        host_(num_host_blocks, std::vector<int32_t>(block_size, kGarbage)) {}

  // The step's data movement before its forward pass, in the workers' order.
  void Move(const SchedulerOutput& output) {
    for (const BlockSwap& swap : output.swap_out) {
      host_.at(swap.host_block) = device_.at(swap.device_block);
    }
    for (const BlockSwap& swap : output.swap_in) {
      device_.at(swap.device_block) = host_.at(swap.host_block);
    }
    for (const BlockCopy& copy : output.block_copies) {
      device_.at(copy.dst_block_id) = device_.at(copy.src_block_id);
    }
  }
  void Write(const std::vector<int32_t>& table, int position, int32_t token) {
    device_.at(table.at(position / block_size_)).at(position % block_size_) = token;
  }
  int32_t Read(const std::vector<int32_t>& table, int position) const {
    return device_.at(table.at(position / block_size_)).at(position % block_size_);
  }

 private:
  const int32_t block_size_;
  std::vector<std::vector<int32_t>> device_;
  std::vector<std::vector<int32_t>> host_;
};

struct SimulationTotals {
  int64_t steps = 0;
  int64_t finished = 0;
  int64_t preemptions = 0;
  int64_t swapped_out = 0;
  int64_t swapped_in = 0;
  int64_t forks = 0;
  int64_t copies = 0;
  int64_t cache_hit_tokens = 0;
  int64_t partial_chunks = 0;
  int64_t aborted_in_flight = 0;
  int64_t rejected = 0;
  int64_t failed_groups = 0;
};

void RunSimulation(uint32_t seed, int num_steps, SimulationTotals* totals) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };

  SchedulerConfig config;
  config.blocks.block_size = std::vector<int>{1, 2, 4, 8, 16}[uniform(0, 4)];
  config.blocks.num_blocks = uniform(6, 48);
  config.blocks.num_host_blocks = chance(0.6) ? uniform(4, 64) : 0;
  config.blocks.watermark = chance(0.5) ? 0.0 : 0.1;
  config.max_num_batched_tokens = uniform(4, 64);
  config.max_num_seqs = uniform(4, 16);
  config.max_model_len = uniform(8, 200);
  config.max_waiting = uniform(1, 16);
  config.enable_prefix_caching = chance(0.7);
  config.preemption_mode = std::vector<PreemptionMode>{PreemptionMode::kAuto, PreemptionMode::kSwap,
                                                       PreemptionMode::kRecompute}[uniform(0, 2)];
  const int32_t block_size = config.blocks.block_size;
  const int max_prompt = std::max(
      2, std::min<int>(config.max_model_len - 1, (config.blocks.num_blocks / 2) * block_size));

  Scheduler scheduler(config);
  worker::StepState worker(config.blocks.num_blocks, block_size, kVocab);
  KvMemory memory(config.blocks.num_blocks, config.blocks.num_host_blocks, block_size);
  // Shared prompt prefixes, so that prefix-cache hits happen.
  std::vector<std::vector<int32_t>> prefixes(3);
  for (auto& prefix : prefixes) {
    prefix.resize(uniform(1, max_prompt));
    for (int32_t& token : prefix) token = uniform(1, 999);
  }
  std::set<uint64_t> live_groups;
  int32_t next_token = 1000;

  auto finish_seq = [&](uint64_t seq_id, SequenceStatus reason) {
    const Sequence* seq = scheduler.GetSequence(seq_id);
    ASSERT_NE(seq, nullptr);
    const uint64_t group_id = seq->group->group_id;
    const bool last = seq->group->seqs.size() == 1;
    ASSERT_TRUE(scheduler.FinishSequence(seq_id, reason).ok());
    scheduler.CheckInvariants();
    if (last) {
      live_groups.erase(group_id);
      ++totals->finished;
    }
  };
  auto finish_group = [&](uint64_t group_id) {
    ASSERT_TRUE(scheduler.FinishGroup(group_id, SequenceStatus::kFinishedAborted).ok());
    scheduler.CheckInvariants();
    live_groups.erase(group_id);
    ++totals->finished;
  };

  for (int step = 0;; ++step) {
    const bool arrivals_open = step < num_steps;
    if (!arrivals_open && !scheduler.has_unfinished()) break;
    ASSERT_LT(step, num_steps + 20000) << "the queue does not drain";

    // Arrivals: single sequences, n-sample groups and beam searches, many sharing a prefix.
    for (int n = arrivals_open && chance(0.3) ? uniform(1, 2) : 0; n > 0; --n) {
      GroupSpec spec;
      const int prompt_len = uniform(1, max_prompt);
      const std::vector<int32_t>& prefix = prefixes[uniform(0, 2)];
      for (int i = 0; i < prompt_len; ++i) {
        spec.prompt_token_ids.push_back(
            chance(0.7) && i < static_cast<int>(prefix.size()) ? prefix[i] : uniform(1, 999));
      }
      spec.max_tokens = uniform(1, std::max(1, config.max_model_len / 3));
      spec.sampling.seed = static_cast<uint64_t>(uniform(0, 1000));
      const int kind = uniform(0, 9);
      spec.num_samples = kind < 6 ? 1 : uniform(2, 4);
      spec.beam_search = kind >= 8;
      const absl::StatusOr<uint64_t> added = scheduler.AddGroup(spec);
      scheduler.CheckInvariants();
      if (added.ok()) {
        live_groups.insert(*added);
      } else {
        ASSERT_TRUE(absl::IsInvalidArgument(added.status()) ||
                    absl::IsResourceExhausted(added.status()))
            << added.status();
        ++totals->rejected;
      }
    }
    // Aborts between steps.
    if (!live_groups.empty() && chance(0.02)) {
      auto it = live_groups.begin();
      std::advance(it, uniform(0, static_cast<int>(live_groups.size()) - 1));
      finish_group(*it);
    }

    const SchedulerOutput output = scheduler.Schedule();
    scheduler.CheckInvariants();
    ++totals->steps;
    for (const auto& [group_id, status] : output.failed_groups) {
      ASSERT_TRUE(live_groups.erase(group_id)) << "unknown failed group " << group_id;
      ASSERT_TRUE(absl::IsResourceExhausted(status)) << status;
      ++totals->failed_groups;
    }
    totals->preemptions += static_cast<int64_t>(output.preempted_seq_ids.size());
    totals->swapped_out += static_cast<int64_t>(output.swap_out.size());
    totals->swapped_in += static_cast<int64_t>(output.swap_in.size());
    totals->forks += static_cast<int64_t>(output.forks.size());
    totals->copies += static_cast<int64_t>(output.block_copies.size());
    ASSERT_TRUE(output.swap_out.empty() || output.swap_in.empty()) << "a step swaps both ways";
    ASSERT_LE(output.num_scheduled_tokens, config.max_num_batched_tokens);
    if (scheduler.has_unfinished() && output.failed_groups.empty()) {
      ASSERT_TRUE(output.has_work())
          << "a step with no progress: " << scheduler.num_running() << " running, "
          << scheduler.num_swapped() << " swapped, " << scheduler.num_waiting() << " waiting, "
          << scheduler.block_manager().num_free_blocks() << " of "
          << scheduler.block_manager().num_total_blocks() << " blocks free, "
          << scheduler.block_manager().num_free_host_blocks() << " host blocks free";
    }
    int sum = 0;
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.GetSequence(s.seq_id);
      ASSERT_NE(seq, nullptr);
      ASSERT_EQ(s.begin, seq->num_computed_tokens);
      ASSERT_LT(s.begin, s.end);
      ASSERT_LE(s.end, seq->num_tokens());
      ASSERT_EQ(s.sample, s.end == seq->num_tokens());
      ASSERT_EQ(
          std::vector<int32_t>(seq->token_ids.begin() + s.begin, seq->token_ids.begin() + s.end),
          std::vector<int32_t>(s.token_ids.begin(), s.token_ids.end()));
      if (!s.sample) ++totals->partial_chunks;
      sum += s.end - s.begin;
    }
    ASSERT_EQ(sum, output.num_scheduled_tokens);

    // The workers apply the encoded step.
    worker::HostBatch batch;
    if (output.has_work()) {
      ASSERT_EQ(output.step_id, worker.last_step_id() + 1);
      const absl::Status applied = worker.Apply(EncodeStep(output), &batch);
      ASSERT_TRUE(applied.ok()) << applied;
    } else {
      ASSERT_EQ(output.step_id, 0u);
    }
    // The whole mirror: the same known sequences, the same tables.
    int known = 0;
    for (uint64_t group_id : live_groups) {
      for (const Sequence* seq : scheduler.GetGroup(group_id)->seqs) {
        ASSERT_EQ(worker.knows(seq->seq_id), seq->known_to_workers) << "sequence " << seq->seq_id;
        known += seq->known_to_workers;
        const bool current = seq->known_to_workers && !seq->needs_table_reset &&
                             seq->status == SequenceStatus::kRunning &&
                             scheduler.block_manager().HasTable(seq->seq_id);
        if (current) {
          ASSERT_EQ(worker.block_table(seq->seq_id), scheduler.block_manager().table(seq->seq_id))
              << "sequence " << seq->seq_id;
        } else if (seq->status != SequenceStatus::kRunning) {
          ASSERT_TRUE(worker.block_table(seq->seq_id).empty()) << "sequence " << seq->seq_id;
        }
      }
    }
    ASSERT_EQ(worker.num_sequences(), known) << "the workers keep state for finished sequences";

    // Sometimes a client goes away while the step runs.
    if (!output.empty() && chance(0.04)) {
      const uint64_t seq_id =
          output.scheduled[uniform(0, static_cast<int>(output.scheduled.size()) - 1)].seq_id;
      const Sequence* seq = scheduler.GetSequence(seq_id);
      if (seq != nullptr) {
        finish_group(seq->group->group_id);
        ++totals->aborted_in_flight;
      }
    }

    // The forward pass writes, then attention reads, through the workers' tables.
    memory.Move(output);
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.GetSequence(s.seq_id);
      const std::vector<int32_t> table = worker.block_table(s.seq_id);
      for (int p = s.begin; p < s.end; ++p) {
        memory.Write(table, p, seq == nullptr ? kGarbage : seq->token_ids[p]);
      }
    }
    absl::flat_hash_map<uint64_t, int32_t> sampled;
    std::map<uint64_t, std::vector<uint64_t>> beam_reports;  // group -> beams that sampled
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler.GetSequence(s.seq_id);
      if (seq == nullptr) continue;
      const std::vector<int32_t> table = worker.block_table(s.seq_id);
      for (int p = 0; p < s.end; ++p) {
        ASSERT_EQ(memory.Read(table, p), seq->token_ids[p])
            << "sequence " << s.seq_id << " position " << p << " of " << s.end;
      }
      if (!s.sample) continue;
      if (seq->group->beam_search) {
        beam_reports[seq->group->group_id].push_back(s.seq_id);
      } else {
        sampled[s.seq_id] = next_token++;
      }
    }
    scheduler.OnStepDone(output, sampled);
    scheduler.CheckInvariants();

    // Stop conditions, the caller's: length, a random stop token.
    for (const auto& [id, token] : sampled) {
      const Sequence* seq = scheduler.GetSequence(id);
      if (seq == nullptr) continue;
      if (seq->num_generated_tokens() == seq->group->max_tokens || token % 13 == 0) {
        finish_seq(id, SequenceStatus::kFinishedLength);
      }
    }
    // Beam searches: every beam sampled together; keep width beams chosen at random (with
    // repeats: forks), prune the others; end the search at max_tokens or by chance.
    for (const auto& [group_id, beams] : beam_reports) {
      const SequenceGroup* group = scheduler.GetGroup(group_id);
      if (group == nullptr) continue;
      ASSERT_EQ(beams.size(), group->seqs.size())
          << "beams of group " << group_id << " sampled apart";
      const Sequence* any = scheduler.GetSequence(beams[0]);
      if (any->num_generated_tokens() + 1 >= group->max_tokens || chance(0.05)) {
        finish_group(group_id);
        continue;
      }
      std::vector<uint64_t> parents;
      for (int i = 0; i < group->num_samples; ++i) {
        parents.push_back(beams[uniform(0, static_cast<int>(beams.size()) - 1)]);
      }
      std::vector<uint64_t> ids;
      std::set<uint64_t> used;
      for (uint64_t parent : parents) {
        ids.push_back(used.insert(parent).second ? parent : scheduler.ForkSequence(parent));
        scheduler.CheckInvariants();
      }
      for (uint64_t id : ids) scheduler.AppendToken(id, next_token++);
      for (uint64_t beam : beams) {
        if (!used.count(beam)) finish_seq(beam, SequenceStatus::kFinishedAborted);
      }
      scheduler.CheckInvariants();
    }
  }
  totals->cache_hit_tokens += scheduler.counters().num_prefix_cache_hit_tokens;
  // Everything came back; one more step tells the workers, after which they hold nothing.
  EXPECT_EQ(scheduler.block_manager().num_free_blocks(), config.blocks.num_blocks);
  EXPECT_EQ(scheduler.block_manager().num_free_host_blocks(), config.blocks.num_host_blocks);
  EXPECT_EQ(scheduler.block_manager().num_tables(), 0);
  const SchedulerOutput last = scheduler.Schedule();
  EXPECT_TRUE(last.empty());
  if (last.has_work()) {
    worker::HostBatch batch;
    ASSERT_TRUE(worker.Apply(EncodeStep(last), &batch).ok());
  }
  scheduler.OnStepDone(last, {});
  EXPECT_EQ(worker.num_sequences(), 0);
}

TEST(SchedulerSimulationTest, GroupsForksCacheHitsSwapsAndAbortsDrainToEmpty) {
  SimulationTotals totals;
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    RunSimulation(seed, /*num_steps=*/1500, &totals);
    if (HasFatalFailure()) return;
  }
  std::printf(
      "simulated %lld steps: %lld finished, %lld rejected, %lld failed, %lld preemptions, "
      "%lld blocks swapped out, %lld swapped in, %lld forks, %lld copies, %lld cache-hit tokens, "
      "%lld partial prefill chunks, %lld aborted in flight\n",
      static_cast<long long>(totals.steps), static_cast<long long>(totals.finished),
      static_cast<long long>(totals.rejected), static_cast<long long>(totals.failed_groups),
      static_cast<long long>(totals.preemptions), static_cast<long long>(totals.swapped_out),
      static_cast<long long>(totals.swapped_in), static_cast<long long>(totals.forks),
      static_cast<long long>(totals.copies), static_cast<long long>(totals.cache_hit_tokens),
      static_cast<long long>(totals.partial_chunks),
      static_cast<long long>(totals.aborted_in_flight));
  // The seeds must have exercised the hard paths.
  EXPECT_GT(totals.preemptions, 100);
  EXPECT_GT(totals.swapped_out, 100);
  EXPECT_GT(totals.swapped_in, 100);
  EXPECT_GT(totals.forks, 100);
  EXPECT_GT(totals.copies, 100);
  EXPECT_GT(totals.cache_hit_tokens, 1000);
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
  std::vector<uint64_t> seq_ids;
  for (int i = 0; i < 256; ++i) {
    GroupSpec spec;
    spec.prompt_token_ids.assign(128, 0);
    for (int t = 0; t < 128; ++t) spec.prompt_token_ids[t] = i * 1000 + t;  // no cache hits
    spec.max_tokens = 1024;
    const absl::StatusOr<uint64_t> group = scheduler.AddGroup(spec);
    ASSERT_TRUE(group.ok());
    seq_ids.push_back(scheduler.GetGroup(*group)->seqs[0]->seq_id);
  }
  absl::flat_hash_map<uint64_t, int32_t> sampled;
  for (uint64_t id : seq_ids) sampled[id] = 1;
  // Prefill: 256 * 128 tokens at 2048 per step.
  while (scheduler.num_waiting() > 0 ||
         scheduler.GetSequence(seq_ids.back())->num_generated_tokens() == 0) {
    const SchedulerOutput output = scheduler.Schedule();
    scheduler.OnStepDone(output, sampled);
  }
  constexpr int kSteps = 1000;
  using Clock = std::chrono::steady_clock;
  Clock::duration schedule_time{}, done_time{}, encode_time{};
  for (int step = 0; step < kSteps; ++step) {
    const Clock::time_point t0 = Clock::now();
    const SchedulerOutput output = scheduler.Schedule();
    const Clock::time_point t1 = Clock::now();
    const auto encoded = EncodeStep(output);
    const Clock::time_point t2 = Clock::now();
    scheduler.OnStepDone(output, sampled);
    const Clock::time_point t3 = Clock::now();
    schedule_time += t1 - t0;
    encode_time += t2 - t1;
    done_time += t3 - t2;
    ASSERT_EQ(output.scheduled.size(), 256u);
    ASSERT_EQ(output.num_scheduled_tokens, 256);
    ASSERT_EQ(encoded.sequences_size(), 256);
  }
  scheduler.CheckInvariants();
  auto us_per_step = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count() / kSteps;
  };
  std::printf(
      "256 running sequences, decode: Schedule() %.2f us/step, EncodeStep() %.2f us/step, "
      "OnStepDone() %.2f us/step\n",
      us_per_step(schedule_time), us_per_step(encode_time), us_per_step(done_time));
}

}  // namespace
}  // namespace pagedllm::coordinator
