// WorkPool: a fixed number of threads running posted closures in order of posting. The frontend
// turns engine chunks into responses here, so thousands of open streams cost no thread each and
// the engine's thread never detokenizes. Thread safe; the destructor runs what was posted, then
// joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pagedllm::coordinator {

class WorkPool {
 public:
  explicit WorkPool(int num_threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Post(std::function<void()> work);

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace pagedllm::coordinator
