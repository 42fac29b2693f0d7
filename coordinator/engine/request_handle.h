// RequestHandle: the mailbox between the engine (producer: its ChunkCourier's thread) and the
// frontend that streams one request's output (consumer): the engine pushes chunks and wakes the
// consumer through its listener; the consumer takes them without waiting. Thread safe.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "coordinator/engine/request.h"

namespace pagedllm::coordinator {

class RequestHandle {
 public:
  explicit RequestHandle(std::string request_id) : request_id_(std::move(request_id)) {}

  const std::string& request_id() const { return request_id_; }

  void Push(GenerationChunk chunk) {
    std::shared_ptr<const std::function<void()>> listener;  // shared, not copied: no allocation
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (done_) return;
      done_ = chunk.request_done || !chunk.error.ok();
      chunks_.push_back(std::move(chunk));
      listener = listener_;
    }
    if (listener != nullptr) (*listener)();  // outside the lock: it may take the chunks at once
  }

  // Called (on the pushing thread: the engine's ChunkCourier) after every Push from now on; it
  // must be cheap (e.g. queue work for another thread). Called once now if chunks are already
  // waiting. An empty function stops the calls; one in progress may still finish.
  void SetListener(std::function<void()> listener) {
    std::shared_ptr<const std::function<void()>> shared;
    if (listener) shared = std::make_shared<const std::function<void()>>(std::move(listener));
    bool pending = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      listener_ = shared;
      pending = !chunks_.empty();
    }
    if (pending && shared != nullptr) (*shared)();
  }

  // Moves everything pending into `out` without waiting; false when nothing was pending.
  bool TryTake(std::vector<GenerationChunk>* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (chunks_.empty()) return false;
    out->assign(std::make_move_iterator(chunks_.begin()), std::make_move_iterator(chunks_.end()));
    chunks_.clear();
    return true;
  }

 private:
  const std::string request_id_;
  std::mutex mutex_;
  std::deque<GenerationChunk> chunks_;
  bool done_ = false;  // the last chunk was pushed; later pushes are dropped
  std::shared_ptr<const std::function<void()>> listener_;  // null: none
};

}  // namespace pagedllm::coordinator
