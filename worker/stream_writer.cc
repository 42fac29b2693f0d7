#include "worker/stream_writer.h"

#include <utility>

namespace pagedllm::worker {

namespace wv1 = pagedllm::worker::v1;

StreamWriter::StreamWriter(std::function<bool(const wv1::WorkerMessage&)> write)
    : write_(std::move(write)), thread_([this] { Run(); }) {}

StreamWriter::~StreamWriter() {
  Flush();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

bool StreamWriter::Send(wv1::WorkerMessage message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_) return false;
    queue_.push_back(std::move(message));
  }
  changed_.notify_all();
  return true;
}

bool StreamWriter::Flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return failed_ || (queue_.empty() && !writing_); });
  return !failed_;
}

void StreamWriter::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, with nothing left
    writing_ = true;
    const wv1::WorkerMessage message = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const bool written = write_(message);
    lock.lock();
    writing_ = false;
    if (!written) {
      failed_ = true;
      queue_.clear();
    }
    changed_.notify_all();
  }
}

}  // namespace pagedllm::worker
