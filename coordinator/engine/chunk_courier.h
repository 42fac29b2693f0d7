// ChunkCourier: pushes the engine's chunks into their request handles on a thread of its own, in
// the order they were sent, so that the engine's loop goes on to schedule the next step while the
// frontends are woken. A Push runs its handle's listener (the gRPC frontend's posts a closure to
// its WorkPool: a mutex and often a futex wake), which took the loop ~0.3 µs per request, several
// µs in lock convoys: with a thousand requests a step, a third of the loop's own time per decode
// step (tools/engine_step_bench; benchmarks/RESULTS.md).
//
// Thread safe. Send hands a batch over with a swap (its cost does not grow with the batch) and
// never waits for deliveries; chunks of one handle arrive in the order sent, whoever sent them.
// Close delivers everything sent, then joins; after it, Send pushes on the caller's thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "coordinator/engine/request.h"
#include "coordinator/engine/request_handle.h"

namespace pagedllm::coordinator {

class ChunkCourier {
 public:
  using Batch = std::vector<std::pair<std::shared_ptr<RequestHandle>, GenerationChunk>>;

  ChunkCourier();   // starts the thread
  ~ChunkCourier();  // Close()
  ChunkCourier(const ChunkCourier&) = delete;
  ChunkCourier& operator=(const ChunkCourier&) = delete;

  // Takes *batch's chunks for delivery, in order, after everything sent before; leaves *batch
  // empty (with a capacity to reuse).
  void Send(Batch* batch);
  // Delivers everything sent and joins the thread. Idempotent.
  void Close();

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable sent_;
  Batch pending_;        // sent, not yet taken by the thread
  bool closed_ = false;  // Close was called: the thread ends once pending_ is empty
  std::thread thread_;
};

}  // namespace pagedllm::coordinator
