#include "worker/stream_reader.h"

#include <utility>

namespace pagedllm::worker {

namespace wv1 = pagedllm::worker::v1;

StreamReader::StreamReader(std::function<bool(wv1::CoordinatorMessage*)> read)
    : read_(std::move(read)), thread_([this] { Run(); }) {}

StreamReader::~StreamReader() { Join(); }

void StreamReader::Join() {
  if (thread_.joinable()) thread_.join();
}

bool StreamReader::Next(wv1::CoordinatorMessage* message) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return ended_ || !queue_.empty(); });
  return PopLocked(message);
}

bool StreamReader::TryNext(wv1::CoordinatorMessage* message) {
  std::lock_guard<std::mutex> lock(mutex_);
  return PopLocked(message);
}

bool StreamReader::PopLocked(wv1::CoordinatorMessage* message) {
  if (queue_.empty()) return false;
  *message = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void StreamReader::Run() {
  while (true) {
    wv1::CoordinatorMessage message;
    const bool read = read_(&message);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (read) {
        queue_.push_back(std::move(message));
      } else {
        ended_ = true;
      }
    }
    changed_.notify_all();
    if (!read) return;
  }
}

}  // namespace pagedllm::worker
