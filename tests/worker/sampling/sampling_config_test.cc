#include "worker/sampling/sampling_config.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 32000;

absl::Status Validate(const SamplingConfig& config) {
  return ValidateSamplingConfig(config, kVocab);
}

TEST(ValidateSamplingConfigTest, DefaultsAndEdgesAreValid) {
  EXPECT_TRUE(Validate(SamplingConfig{}).ok());
  SamplingConfig config;
  config.temperature = 0.0f;
  config.top_p = 1e-8f;
  config.top_k = kVocab * 4;  // larger than the vocab: off
  config.min_p = 1.0f;
  config.seed = 0;
  config.num_top_logprobs = kMaxTopLogprobs;
  EXPECT_TRUE(Validate(config).ok()) << Validate(config);
  config.num_top_logprobs = 0;
  config.min_p = 0.0f;
  config.top_k = 0;
  EXPECT_TRUE(Validate(config).ok()) << Validate(config);
}

TEST(ValidateSamplingConfigTest, TopPMessage) {
  SamplingConfig config;
  config.top_p = 1.5f;
  absl::Status status = Validate(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "top_p must be in (0, 1], got 1.5");
  config.top_p = 0.0f;
  EXPECT_EQ(Validate(config).message(), "top_p must be in (0, 1], got 0");
  config.top_p = std::nanf("");
  EXPECT_THAT(Validate(config).message(), HasSubstr("top_p must be in (0, 1], got nan"));
}

TEST(ValidateSamplingConfigTest, TemperatureMessage) {
  SamplingConfig config;
  config.temperature = -0.5f;
  EXPECT_EQ(Validate(config).message(), "temperature must be finite and >= 0, got -0.5");
  config.temperature = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
  config.temperature = std::nanf("");
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateSamplingConfigTest, TopKMinPAndLogprobsMessages) {
  SamplingConfig config;
  config.top_k = -3;
  EXPECT_EQ(Validate(config).message(), "top_k must be >= 0 (0 = off), got -3");

  config = SamplingConfig{};
  config.min_p = 2.0f;
  EXPECT_EQ(Validate(config).message(), "min_p must be in [0, 1], got 2");
  config.min_p = -0.1f;
  EXPECT_EQ(Validate(config).message(), "min_p must be in [0, 1], got -0.1");

  config = SamplingConfig{};
  config.num_top_logprobs = 21;
  EXPECT_EQ(Validate(config).message(), "num_top_logprobs must be in [-1, 20] (-1 = none), got 21");
  config.num_top_logprobs = -2;
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);

  config.num_top_logprobs = 5;
  EXPECT_EQ(ValidateSamplingConfig(config, 4).message(), "num_top_logprobs 5 exceeds vocab_size 4");
  EXPECT_EQ(ValidateSamplingConfig(SamplingConfig{}, 0).message(), "vocab_size must be > 0, got 0");
}

}  // namespace
}  // namespace pagedllm::worker
