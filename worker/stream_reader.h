// StreamReader: reads the control stream's messages on a thread of its own, ahead of the step
// loop, so that the next step's instruction (already sent, with async scheduling) is received
// and parsed while the current step runs.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "pagedllm/worker/v1/worker.pb.h"

namespace pagedllm::worker {

class StreamReader {
 public:
  // `read` reads one message and returns false once the stream has ended (or was cancelled).
  explicit StreamReader(std::function<bool(pagedllm::worker::v1::CoordinatorMessage*)> read);
  ~StreamReader();  // joins (Join)
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // The next message, waiting for it; false once the stream has ended and every message read
  // was taken.
  bool Next(pagedllm::worker::v1::CoordinatorMessage* message);
  // The next message if one was read already; false (without waiting) otherwise.
  bool TryNext(pagedllm::worker::v1::CoordinatorMessage* message);
  // Waits for the reading thread to see the stream end: end or cancel the stream first.
  void Join();

 private:
  void Run();
  // The queue's first message, if any (mutex_ held).
  bool PopLocked(pagedllm::worker::v1::CoordinatorMessage* message);

  const std::function<bool(pagedllm::worker::v1::CoordinatorMessage*)> read_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<pagedllm::worker::v1::CoordinatorMessage> queue_;
  bool ended_ = false;
  std::thread thread_;
};

}  // namespace pagedllm::worker
