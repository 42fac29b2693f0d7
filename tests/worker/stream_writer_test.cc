// StreamWriter: messages go out in the order queued, from another thread; Flush waits for them;
// after a failed write nothing more is written and Send says so.
#include "worker/stream_writer.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

namespace wv1 = pagedllm::worker::v1;

wv1::WorkerMessage Beat(int rank) {
  wv1::WorkerMessage message;
  message.mutable_heartbeat()->set_rank(rank);
  return message;
}

TEST(StreamWriterTest, WritesInOrderFromItsOwnThread) {
  std::mutex mutex;
  std::vector<int> written;
  std::vector<std::thread::id> threads;
  StreamWriter writer([&](const wv1::WorkerMessage& message) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));  // a slow stream
    std::lock_guard<std::mutex> lock(mutex);
    written.push_back(message.heartbeat().rank());
    threads.push_back(std::this_thread::get_id());
    return true;
  });
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(writer.Send(Beat(i)));
  ASSERT_TRUE(writer.Flush());
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(written.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(written[i], i);
  for (const std::thread::id& id : threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(StreamWriterTest, AFailedWriteStopsTheRest) {
  std::atomic<int> attempts{0};
  StreamWriter writer([&](const wv1::WorkerMessage& message) {
    ++attempts;
    return message.heartbeat().rank() < 3;  // the stream breaks at the fourth message
  });
  for (int i = 0; i < 10; ++i) writer.Send(Beat(i));
  EXPECT_FALSE(writer.Flush());
  EXPECT_FALSE(writer.Send(Beat(10)));
  EXPECT_EQ(attempts.load(), 4);
}

TEST(StreamWriterTest, DestructionWritesWhatIsQueued) {
  std::atomic<int> written{0};
  {
    StreamWriter writer([&](const wv1::WorkerMessage&) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ++written;
      return true;
    });
    for (int i = 0; i < 20; ++i) writer.Send(Beat(i));
  }
  EXPECT_EQ(written.load(), 20);
}

}  // namespace
}  // namespace pagedllm::worker
