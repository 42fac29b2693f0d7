#include "coordinator/worker_link/step_deadline.h"

#include <gtest/gtest.h>

namespace pagedllm::coordinator {
namespace {

TEST(StepDeadlineTest, TheCapUntilWarmedUpAndForSizesNeverSeen) {
  StepDeadline deadline(absl::Seconds(120));
  EXPECT_EQ(deadline.For(1), absl::Seconds(120));
  for (int i = 0; i < StepDeadline::kWarmupSteps - 1; ++i) {
    deadline.Observe(8, absl::Milliseconds(20));
  }
  EXPECT_EQ(deadline.For(8), absl::Seconds(120));  // still warming up
  deadline.Observe(8, absl::Milliseconds(20));
  EXPECT_EQ(deadline.For(8), StepDeadline::kFloor);   // 10 x 20 ms is under the floor
  EXPECT_EQ(deadline.For(1), StepDeadline::kFloor);   // smaller steps too
  EXPECT_EQ(deadline.For(2048), absl::Seconds(120));  // a prefill of a size never seen
}

TEST(StepDeadlineTest, SlackTimesTheSlowestStepOfTheSizeOrSmaller) {
  StepDeadline deadline(absl::Seconds(120));
  for (int i = 0; i < 4; ++i) deadline.Observe(16, absl::Milliseconds(50));
  deadline.Observe(1024, absl::Seconds(3));  // a prefill
  deadline.Observe(9, absl::Seconds(2));     // one slow decode step
  EXPECT_EQ(deadline.For(1024), absl::Seconds(30));
  EXPECT_EQ(deadline.For(600), absl::Seconds(30));   // one size class down counts the larger
  EXPECT_EQ(deadline.For(16), absl::Seconds(20));    // the slow decode, not the prefill
  EXPECT_EQ(deadline.For(1), StepDeadline::kFloor);  // nothing that small seen: the floor
  deadline.Observe(16, absl::Seconds(30));
  EXPECT_EQ(deadline.For(16), absl::Seconds(120));  // never above the cap
}

}  // namespace
}  // namespace pagedllm::coordinator
