// ChunkCourier: every chunk sent reaches its handle, in the order sent, on the courier's thread;
// Close delivers what is still queued; a Send after Close pushes at once.
#include "coordinator/engine/chunk_courier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace pagedllm::coordinator {
namespace {

GenerationChunk Token(int32_t id) {
  GenerationChunk chunk;
  chunk.token_ids.push_back(id);
  return chunk;
}

std::vector<int32_t> TokensOf(RequestHandle& handle) {
  std::vector<GenerationChunk> chunks;
  std::vector<int32_t> ids;
  if (!handle.TryTake(&chunks)) return ids;
  for (const GenerationChunk& chunk : chunks) {
    ids.insert(ids.end(), chunk.token_ids.begin(), chunk.token_ids.end());
  }
  return ids;
}

TEST(ChunkCourierTest, DeliversEveryChunkInOrderOnItsOwnThread) {
  auto a = std::make_shared<RequestHandle>("a");
  auto b = std::make_shared<RequestHandle>("b");
  std::atomic<int> calls_elsewhere{0};
  const std::thread::id sender = std::this_thread::get_id();
  a->SetListener([&] { calls_elsewhere += std::this_thread::get_id() != sender; });
  ChunkCourier courier;
  ChunkCourier::Batch batch;
  for (int32_t step = 0; step < 1000; ++step) {  // batches sent faster than delivered, at times
    batch.emplace_back(a, Token(step));
    batch.emplace_back(b, Token(-step));
    courier.Send(&batch);
    EXPECT_TRUE(batch.empty());
  }
  courier.Close();  // everything sent is delivered before it returns
  std::vector<int32_t> want_a, want_b;
  for (int32_t step = 0; step < 1000; ++step) {
    want_a.push_back(step);
    want_b.push_back(-step);
  }
  EXPECT_EQ(TokensOf(*a), want_a);
  EXPECT_EQ(TokensOf(*b), want_b);
  EXPECT_EQ(calls_elsewhere.load(), 1000);
}

TEST(ChunkCourierTest, SendAfterCloseDeliversAtOnce) {
  auto handle = std::make_shared<RequestHandle>("r");
  ChunkCourier courier;
  ChunkCourier::Batch batch;
  batch.emplace_back(handle, Token(1));
  courier.Send(&batch);
  courier.Close();
  courier.Close();  // idempotent
  batch.emplace_back(handle, Token(2));
  courier.Send(&batch);
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(TokensOf(*handle), (std::vector<int32_t>{1, 2}));
  courier.Send(&batch);  // an empty batch is nothing to do
}

TEST(ChunkCourierTest, TheLastChunkOfARequestEndsItsDeliveries) {
  auto handle = std::make_shared<RequestHandle>("r");
  ChunkCourier courier;
  ChunkCourier::Batch batch;
  batch.emplace_back(handle, Token(1));
  GenerationChunk last = Token(2);
  last.request_done = true;
  batch.emplace_back(handle, std::move(last));
  batch.emplace_back(handle, Token(3));  // after the request's end: dropped, as Push drops it
  courier.Send(&batch);
  courier.Close();
  EXPECT_EQ(TokensOf(*handle), (std::vector<int32_t>{1, 2}));
}

}  // namespace
}  // namespace pagedllm::coordinator
