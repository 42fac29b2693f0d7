// ThreadPool: every index runs exactly once, for any thread count, over many calls.
#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace pagedllm::kernels::cpu {
namespace {

TEST(ThreadPool, EveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << i;
    }
  }
}

TEST(ThreadPool, RangesCoverWithoutOverlap) {
  ThreadPool pool(3);
  for (int64_t grain : {1, 7, 100, 5000}) {
    std::vector<std::atomic<int>> hits(1001);
    pool.ParallelForRange(1001, grain, [&](int64_t begin, int64_t end) {
      EXPECT_LE(end - begin, grain);
      for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < 1001; ++i) ASSERT_EQ(hits[i].load(), 1) << grain << " " << i;
  }
}

// Many short back-to-back calls: a worker waking late must never see the wrong generation.
TEST(ThreadPool, ManyCallsInARow) {
  ThreadPool pool(4);
  std::atomic<int64_t> total{0};
  for (int call = 0; call < 3000; ++call) {
    pool.ParallelFor(5, [&](int64_t i) { total.fetch_add(i + 1); });
  }
  EXPECT_EQ(total.load(), 3000 * 15);
}

}  // namespace
}  // namespace pagedllm::kernels::cpu
