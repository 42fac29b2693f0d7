// ThreadPool: a fixed set of worker threads for the CPU kernels' parallel loops.
//
// ParallelFor hands out indices [0, n) one at a time to the workers and the calling thread,
// and returns when every call has finished. Owned by the CpuDevice; like the Device it is used
// from one thread at a time (ParallelFor is not reentrant: fn must not call it again).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pagedllm::kernels::cpu {

class ThreadPool {
 public:
  // `num_threads` counts the caller: 1 means no workers (everything runs inline).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) once for every i in [0, n), possibly concurrently.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

  // Splits [0, n) into chunks of about `grain` indices and calls fn(begin, end) for each.
  void ParallelForRange(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunItems();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  // Guarded by mutex_:
  bool stop_ = false;
  uint64_t generation_ = 0;
  int pending_workers_ = 0;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  // The next index to hand out in the current generation.
  std::atomic<int64_t> next_{0};
};

}  // namespace pagedllm::kernels::cpu
