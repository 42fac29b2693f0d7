// pagedllm-engine-step-bench: the coordinator's own CPU time per decode step, without a GPU or a
// network (issue 11; benchmarks/RESULTS.md). The real Engine, Scheduler, BlockManager and
// ServingMetrics drive B requests (prompt 128 random tokens, ignore_eos, max_tokens long enough
// never to finish) through an executor that answers at once: it encodes the step as
// GrpcStepExecutor does and serializes it once per rank (what each rank's gRPC Write does), makes
// the reply a worker would (not timed: the worker's side), and takes it back as the WorkerHub and
// GrpcStepExecutor do (parse, through the hub's result map, decode). Every request streams into
// a RequestHandle whose listener posts a pump to a WorkPool, as the gRPC frontend does; the pump
// takes the chunks and drops them.
//
// Per decode step, in µs (median over --repeats windows of --steps steps each):
//   schedule   Scheduler::Schedule (EngineStats::schedule_ns_total)
//   encode     EncodeStep into the executor's message, one serialization per rank (--tp)
//   decode     parse rank 0's reply, move it through the hub's map, DecodeStepResult, free them
//   apply      the tokens into the scheduler (OnStepDone), step stats, observer's OnStep
//   output     stop checks, choices, chunks, observer's token hooks (HandleSampled)
//   push       the step's chunks handed to the ChunkCourier (whose thread pushes them into the
//              handles and runs their listeners, off the loop)
//   total      wall time of the window over its steps, the fake worker's time taken out: all of
//              the loop thread's time per step (the parts above, the loop's own bookkeeping, and
//              what it loses to the courier and pump threads on a busy machine)
//   cpu        the loop thread's CPU time in the same window, the fake worker's taken out
//
//   pagedllm-engine-step-bench [--batches 1,256,1024,4096] [--steps 200] [--repeats 5] [--tp 1]
//                              [--pool_threads 2]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/engine/engine.h"
#include "coordinator/frontend/work_pool.h"
#include "coordinator/metrics/serving_metrics.h"
#include "coordinator/worker_link/grpc_step_executor.h"

ABSL_FLAG(std::string, batches, "1,256,1024,4096", "decode batch sizes, comma separated");
ABSL_FLAG(int, steps, 200, "decode steps per timed window");
ABSL_FLAG(int, repeats, 5, "timed windows per batch (the median is printed)");
ABSL_FLAG(int, tp, 1, "ranks: the step is serialized once per rank");
ABSL_FLAG(int, prompt_len, 128, "prompt tokens per request");
ABSL_FLAG(int, pool_threads, 2,
          "threads of the WorkPool that takes the chunks (the server's: 2); 0: no listener, the "
          "chunks are taken between the timed windows (the engine's side of a push alone)");

namespace pagedllm::coordinator {
namespace {

namespace wv1 = pagedllm::worker::v1;
using Clock = std::chrono::steady_clock;

int64_t Ns(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// CPU time of the calling thread.
int64_t ThreadCpuNs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

constexpr int32_t kToken = 11;  // what the fake worker samples (never EOS: ignore_eos anyway)

// Answers every step at once, timing the coordinator's side of the wire. Pauses on entry to the
// decode step PauseAt names (counting decode steps from 1) until PauseAt names another, so that
// the bench reads the engine's stats between two steps.
class InstantExecutor final : public RunOnSendExecutor {
 public:
  struct Counters {
    int64_t decode_steps = 0;
    int64_t encode_ns = 0;  // decode steps only, as the rest
    int64_t decode_ns = 0;
    int64_t worker_ns = 0;      // the fake worker's own time (taken out of the window)
    Clock::time_point paused;   // when the latest pause began
    Clock::time_point resumed;  // when the pause before it ended
    int64_t paused_cpu_ns = 0;  // the loop thread's CPU time then
    int64_t resumed_cpu_ns = 0;
  };

  explicit InstantExecutor(int tp) : tp_(tp) {}

  absl::StatusOr<StepOutcome> Run(const SchedulerOutput& step) override {
    const bool decode = step.num_scheduled_tokens == static_cast<int>(step.scheduled.size());
    if (decode) MaybePause();
    const Clock::time_point t0 = Clock::now();
    // As GrpcStepExecutor and WorkerHub::RunStep: the step encoded into the executor's message,
    // written to every rank (each Write serializes it).
    EncodeStep(step, message_.mutable_step());
    for (int rank = 0; rank < tp_; ++rank) message_.SerializeToString(&wire_);
    const Clock::time_point t1 = Clock::now();

    {
      // The worker: one token per sampling sequence, in batch order.
      wv1::WorkerMessage reply;
      wv1::StepResult* result = reply.mutable_result();
      result->set_step_id(step.step_id);
      result->set_forward_ns(1);
      for (const ScheduledSequence& scheduled : step.scheduled) {
        if (!scheduled.sample) continue;
        wv1::SampledToken* token = result->add_tokens();
        token->set_seq_id(scheduled.seq_id);
        token->set_token_id(kToken);
      }
      reply.SerializeToString(&reply_wire_);
    }
    const Clock::time_point t2 = Clock::now();

    StepOutcome outcome;
    {
      // The hub's reader thread, then the engine's thread in GrpcStepExecutor.
      wv1::WorkerMessage received;
      received.ParseFromString(reply_wire_);
      const uint64_t step_id = received.result().step_id();
      results_[step_id] = std::move(*received.mutable_result());  // as WorkerHub::Connect does
      wv1::StepResult taken = std::move(results_[step.step_id]);
      results_.erase(step.step_id);
      outcome = DecodeStepResult(taken);
    }
    const Clock::time_point t3 = Clock::now();

    if (decode) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++counters_.decode_steps;
      counters_.encode_ns += Ns(t1 - t0);
      counters_.worker_ns += Ns(t2 - t1);
      counters_.decode_ns += Ns(t3 - t2);
    }
    return outcome;
  }
  absl::Status health() const override { return absl::OkStatus(); }

  // The executor pauses on entry to decode step `step` (from 1), or runs freely with -1; a
  // pause in progress ends. Set before that step can come.
  void PauseAt(int64_t step) {
    std::lock_guard<std::mutex> lock(mutex_);
    pause_at_ = step;
    changed_.notify_all();
  }
  // Blocks until the executor is paused on entry to decode step `step` (PauseAt(step) first),
  // then returns the counters (which cover the decode steps before it).
  Counters WaitPausedAt(int64_t step) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return paused_ && counters_.decode_steps + 1 == step; });
    return counters_;
  }

 private:
  void MaybePause() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (pause_at_ != counters_.decode_steps + 1) return;
    counters_.paused = Clock::now();
    counters_.paused_cpu_ns = ThreadCpuNs();
    paused_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return pause_at_ != counters_.decode_steps + 1; });
    paused_ = false;
    counters_.resumed = Clock::now();
    counters_.resumed_cpu_ns = ThreadCpuNs();
  }

  const int tp_;
  wv1::CoordinatorMessage message_;
  std::string wire_;
  std::string reply_wire_;
  std::map<uint64_t, wv1::StepResult> results_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Counters counters_;
  int64_t pause_at_ = -1;
  bool paused_ = false;
};

// One streaming call as the gRPC frontend wires it (generation_service.cc): the listener posts
// at most one pump at a time; the pump takes the chunks (and here drops them).
struct Stream {
  std::shared_ptr<RequestHandle> handle;
  WorkPool* pool = nullptr;
  std::atomic<bool> pump_posted{false};
  std::mutex mutex;
  std::atomic<int64_t> chunks{0};

  void Pump() {
    pump_posted = false;
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<GenerationChunk> taken;
    if (handle->TryTake(&taken)) chunks += static_cast<int64_t>(taken.size());
  }
};

struct PartTimes {  // µs per decode step
  double schedule = 0, encode = 0, decode = 0, apply = 0, output = 0, push = 0, total = 0, cpu = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// The parts the engine times itself (EngineStats), summed so far.
struct EngineParts {
  uint64_t schedule_ns = 0, apply_ns = 0, output_ns = 0, push_ns = 0;
};
EngineParts PartsOf(const EngineStats& stats) {
  EngineParts parts;
  parts.schedule_ns = stats.schedule_ns_total;
  parts.apply_ns = stats.apply_ns_total;
  parts.output_ns = stats.output_ns_total;
  parts.push_ns = stats.push_ns_total;
  return parts;
}

std::vector<PartTimes> RunBatch(int batch, int steps, int repeats, int tp, int prompt_len,
                                int pool_threads) {
  const int warmup_steps = 20;
  const int max_tokens = warmup_steps + steps * repeats + 64;
  SchedulerConfig config;
  config.max_num_seqs = batch;
  config.max_num_batched_tokens = std::max(8192, batch);
  config.max_model_len = prompt_len + max_tokens;
  config.max_waiting = batch;
  config.blocks.block_size = 16;
  config.blocks.num_blocks = batch * ((config.max_model_len + 15) / 16 + 1) + 64;
  ModelLimits limits;
  limits.vocab_size = 32000;
  limits.max_model_len = config.max_model_len;
  limits.eos_token_ids = {2};

  ServingMetricsOptions metrics_options;
  metrics_options.model_name = "bench";
  metrics_options.max_model_len = config.max_model_len;
  ServingMetrics metrics(metrics_options);
  InstantExecutor executor(tp);
  WorkPool pool(std::max(1, pool_threads));
  std::vector<std::shared_ptr<Stream>> streams;
  std::vector<PartTimes> windows;
  {
    Engine engine(config, limits, &executor, &metrics);
    metrics.set_engine(&engine);
    executor.PauseAt(warmup_steps);
    std::mt19937 random(batch);
    std::uniform_int_distribution<int32_t> token(3, limits.vocab_size - 1);
    for (int i = 0; i < batch; ++i) {
      RequestSpec spec;
      spec.request_id = absl::StrCat("bench-", i);
      spec.key = absl::StrCat("key-", batch, "-", i, "-", random());
      spec.prompt_token_ids.resize(prompt_len);
      for (int32_t& t : spec.prompt_token_ids) t = token(random);
      spec.max_tokens = max_tokens;
      spec.ignore_eos = true;
      spec.sampling.temperature = 0.0f;
      spec.sampling.seed = static_cast<uint64_t>(i);
      auto stream = std::make_shared<Stream>();
      stream->pool = &pool;
      stream->handle = engine.Submit(std::move(spec));
      if (pool_threads > 0) {
        stream->handle->SetListener([weak = std::weak_ptr<Stream>(stream)] {
          std::shared_ptr<Stream> s = weak.lock();
          if (s == nullptr || s->pump_posted.exchange(true)) return;
          s->pool->Post([weak] {
            if (std::shared_ptr<Stream> posted = weak.lock()) posted->Pump();
          });
        });
      }
      streams.push_back(std::move(stream));
    }
    engine.Start();  // with every request queued: decode steps are those of the whole batch
    // Prefill (and the first decode steps) untimed; every request must be decoding.
    InstantExecutor::Counters before = executor.WaitPausedAt(warmup_steps);
    const auto take_chunks = [&] {
      if (pool_threads > 0) return;
      for (const std::shared_ptr<Stream>& stream : streams) stream->Pump();
    };
    take_chunks();
    EngineStats stats_before = engine.stats();
    if (stats_before.num_running != batch) {
      std::fprintf(stderr, "batch %d: only %d running after warm-up\n", batch,
                   stats_before.num_running);
      std::exit(1);
    }
    for (int r = 0; r < repeats; ++r) {
      const int64_t next = before.decode_steps + 1 + steps;
      executor.PauseAt(next);  // ends this pause and sets the next one at once
      const InstantExecutor::Counters after = executor.WaitPausedAt(next);
      const EngineStats stats_after = engine.stats();
      take_chunks();
      const EngineParts a = PartsOf(stats_before);
      const EngineParts b = PartsOf(stats_after);
      PartTimes t;
      const double per = 1e-3 / steps;  // ns in total -> µs per step
      t.schedule = static_cast<double>(b.schedule_ns - a.schedule_ns) * per;
      t.apply = static_cast<double>(b.apply_ns - a.apply_ns) * per;
      t.output = static_cast<double>(b.output_ns - a.output_ns) * per;
      t.push = static_cast<double>(b.push_ns - a.push_ns) * per;
      t.encode = static_cast<double>(after.encode_ns - before.encode_ns) * per;
      t.decode = static_cast<double>(after.decode_ns - before.decode_ns) * per;
      // From the end of the first pause to the start of the last: `steps` whole iterations of
      // the loop, less the fake worker's time.
      const int64_t window_ns = Ns(after.paused - after.resumed);
      t.total = static_cast<double>(window_ns - (after.worker_ns - before.worker_ns)) * per;
      // The loop thread's CPU time in the same window (time it lost to other threads or spent
      // blocked is in total, not here).
      t.cpu = static_cast<double>(after.paused_cpu_ns - after.resumed_cpu_ns -
                                  (after.worker_ns - before.worker_ns)) *
              per;
      windows.push_back(t);
      if (after.decode_steps - before.decode_steps != steps) {
        std::fprintf(stderr, "window of %lld steps, expected %d\n",
                     static_cast<long long>(after.decode_steps - before.decode_steps), steps);
      }
      before = after;
      stats_before = stats_after;
    }
    executor.PauseAt(-1);
    engine.Stop();
  }
  return windows;
}

}  // namespace
}  // namespace pagedllm::coordinator

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace pagedllm::coordinator;  // NOLINT
  std::vector<int> batches;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
    int b = 0;
    if (!absl::SimpleAtoi(part, &b) || b < 1) {
      std::fprintf(stderr, "--batches: \"%s\" is not a positive number\n",
                   std::string(part).c_str());
      return 2;
    }
    batches.push_back(b);
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int tp = absl::GetFlag(FLAGS_tp);
  std::printf("µs per decode step (median of %d windows of %d steps), tp %d, %d pool threads\n",
              repeats, steps, tp, absl::GetFlag(FLAGS_pool_threads));
  std::printf("%6s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", "batch", "schedule", "encode", "decode",
              "apply", "output", "push", "sum", "total", "cpu");
  for (int batch : batches) {
    const std::vector<PartTimes> windows =
        RunBatch(batch, steps, repeats, tp, absl::GetFlag(FLAGS_prompt_len),
                 absl::GetFlag(FLAGS_pool_threads));
    auto median = [&](double PartTimes::*field) {
      std::vector<double> v;
      for (const PartTimes& t : windows) v.push_back(t.*field);
      return Median(v);
    };
    const double sum = median(&PartTimes::schedule) + median(&PartTimes::encode) +
                       median(&PartTimes::decode) + median(&PartTimes::apply) +
                       median(&PartTimes::output) + median(&PartTimes::push);
    std::printf("%6d %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", batch,
                median(&PartTimes::schedule), median(&PartTimes::encode),
                median(&PartTimes::decode), median(&PartTimes::apply), median(&PartTimes::output),
                median(&PartTimes::push), sum, median(&PartTimes::total), median(&PartTimes::cpu));
    std::fflush(stdout);
  }
  return 0;
}
