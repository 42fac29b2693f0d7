#include "kernels/cpu/thread_pool.h"

#include <algorithm>

#include "common/check.h"

namespace pagedllm::kernels::cpu {

ThreadPool::ThreadPool(int num_threads) {
  PAGEDLLM_CHECK(num_threads >= 1, "ThreadPool needs at least 1 thread, got ", num_threads);
  workers_.reserve(num_threads - 1);
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunItems() {
  // fn_ and n_ are stable while a generation runs: the caller waits for every worker.
  for (int64_t i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i);
}

void ThreadPool::WorkerLoop() {
  uint64_t seen_generation = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen_generation; });
      if (stop_) return;
      seen_generation = generation_;
    }
    RunItems();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_workers_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PAGEDLLM_CHECK(fn_ == nullptr, "ThreadPool::ParallelFor is not reentrant");
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    pending_workers_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  work_cv_.notify_all();
  RunItems();
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return pending_workers_ == 0; });
  fn_ = nullptr;
  n_ = 0;
}

void ThreadPool::ParallelForRange(int64_t n, int64_t grain,
                                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t num_chunks = (n + grain - 1) / grain;
  ParallelFor(num_chunks, [&](int64_t chunk) {
    const int64_t begin = chunk * grain;
    fn(begin, std::min(n, begin + grain));
  });
}

}  // namespace pagedllm::kernels::cpu
