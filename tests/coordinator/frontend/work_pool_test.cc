#include "coordinator/frontend/work_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace pagedllm::coordinator {
namespace {

TEST(WorkPoolTest, OneThreadRunsWorkInOrderOfPosting) {
  std::vector<int> order;
  {
    WorkPool pool(1);
    for (int i = 0; i < 1000; ++i) pool.Post([&order, i] { order.push_back(i); });
  }  // the destructor runs everything posted, then joins
  ASSERT_EQ(order.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[i], i);
}

TEST(WorkPoolTest, RunsOnItsOwnBoundedThreads) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> running{0}, most{0};
  {
    WorkPool pool(3);
    for (int i = 0; i < 200; ++i) {
      pool.Post([&] {
        const int now = ++running;
        for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
        }
        {
          std::lock_guard<std::mutex> lock(mutex);
          threads.insert(std::this_thread::get_id());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        --running;
      });
    }
  }
  EXPECT_LE(threads.size(), 3u);
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(WorkPoolTest, ZeroThreadsMeansOne) {
  std::atomic<int> ran{0};
  {
    WorkPool pool(0);
    pool.Post([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace pagedllm::coordinator
