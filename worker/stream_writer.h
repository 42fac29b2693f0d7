// StreamWriter: writes the control stream's messages from a thread of its own, in the order they
// were queued, so that the step loop goes on to the next step (already waiting, with async
// scheduling) while a result is on its way to the coordinator.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "pagedllm/worker/v1/worker.pb.h"

namespace pagedllm::worker {

class StreamWriter {
 public:
  // `write` writes one message (taking whatever lock the stream's other writers take) and
  // returns false when the stream is broken.
  explicit StreamWriter(std::function<bool(const pagedllm::worker::v1::WorkerMessage&)> write);
  ~StreamWriter();  // writes what is queued, then stops
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Queues a message; false once a write has failed (nothing more is written then).
  bool Send(pagedllm::worker::v1::WorkerMessage message);
  // Waits until every message queued is written; false if a write failed.
  bool Flush();

 private:
  void Run();

  const std::function<bool(const pagedllm::worker::v1::WorkerMessage&)> write_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<pagedllm::worker::v1::WorkerMessage> queue_;
  bool writing_ = false;  // a message taken from the queue is being written
  bool failed_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pagedllm::worker
