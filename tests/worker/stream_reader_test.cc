// StreamReader: messages come out in the order read, read ahead on another thread; Next says
// false once the stream has ended and everything read was taken.
#include "worker/stream_reader.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

namespace wv1 = pagedllm::worker::v1;

TEST(StreamReaderTest, ReadsAheadInOrderUntilTheStreamEnds) {
  std::atomic<int> reads{0};
  StreamReader reader([&](wv1::CoordinatorMessage* message) {
    const int n = reads++;
    if (n == 50) return false;  // the stream ends after 50 messages
    message->mutable_step()->set_step_id(n + 1);
    return true;
  });
  // Read ahead: all 50 arrive (and the end) before the loop takes the first.
  for (int i = 0; i < 1000 && reads.load() < 51; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(reads.load(), 51);
  wv1::CoordinatorMessage message;
  for (int i = 1; i <= 50; ++i) {
    ASSERT_TRUE(reader.Next(&message));
    EXPECT_EQ(message.step().step_id(), static_cast<uint64_t>(i));
  }
  EXPECT_FALSE(reader.Next(&message));
  EXPECT_FALSE(reader.Next(&message));
}

TEST(StreamReaderTest, NextWaitsForAMessage) {
  std::atomic<bool> release{false};
  int calls = 0;
  StreamReader reader([&](wv1::CoordinatorMessage* message) {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (calls++ > 0) return false;  // one message, then the end
    message->mutable_shutdown()->set_reason("bye");
    return true;
  });
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    release = true;
  });
  wv1::CoordinatorMessage message;
  ASSERT_TRUE(reader.Next(&message));
  EXPECT_EQ(message.shutdown().reason(), "bye");
  EXPECT_FALSE(reader.Next(&message));
  releaser.join();
}

}  // namespace
}  // namespace pagedllm::worker
