#include "coordinator/engine/chunk_courier.h"

namespace pagedllm::coordinator {

ChunkCourier::ChunkCourier() : thread_([this] { Run(); }) {}

ChunkCourier::~ChunkCourier() { Close(); }

void ChunkCourier::Send(Batch* batch) {
  if (batch->empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_) {
      if (pending_.empty()) {
        pending_.swap(*batch);  // *batch gets the empty buffer the thread gave back
      } else {
        pending_.insert(pending_.end(), std::make_move_iterator(batch->begin()),
                        std::make_move_iterator(batch->end()));
        batch->clear();
      }
      sent_.notify_one();
      return;
    }
  }
  // Closed: nothing is queued any more, so pushing here keeps the order.
  for (auto& [handle, chunk] : *batch) handle->Push(std::move(chunk));
  batch->clear();
}

void ChunkCourier::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  sent_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ChunkCourier::Run() {
  Batch delivering;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    sent_.wait(lock, [this] { return closed_ || !pending_.empty(); });
    if (pending_.empty()) return;  // closed, and everything sent is delivered
    delivering.swap(pending_);     // pending_ gets the emptied buffer of the previous round
    lock.unlock();
    for (auto& [handle, chunk] : delivering) handle->Push(std::move(chunk));
    delivering.clear();  // the handles' references go here, on this thread
    lock.lock();
  }
}

}  // namespace pagedllm::coordinator
