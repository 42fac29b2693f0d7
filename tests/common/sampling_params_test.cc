#include "common/sampling_params.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 32000;

absl::Status Validate(const SamplingParams& config) {
  return ValidateSamplingParams(config, kVocab);
}

TEST(ValidateSamplingParamsTest, DefaultsAndEdgesAreValid) {
  EXPECT_TRUE(Validate(SamplingParams{}).ok());
  SamplingParams config;
  config.temperature = 0.0f;
  config.top_p = 1e-8f;
  config.top_k = kVocab * 4;  // larger than the vocab: off
  config.min_p = 1.0f;
  config.seed = 0;
  config.num_top_logprobs = kMaxSequenceTopLogprobs;
  EXPECT_TRUE(Validate(config).ok()) << Validate(config);
  config.num_top_logprobs = 0;
  config.min_p = 0.0f;
  config.top_k = 0;
  EXPECT_TRUE(Validate(config).ok()) << Validate(config);
}

TEST(ValidateSamplingParamsTest, TopPMessage) {
  SamplingParams config;
  config.top_p = 1.5f;
  absl::Status status = Validate(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "top_p must be in (0, 1], got 1.5");
  config.top_p = 0.0f;
  EXPECT_EQ(Validate(config).message(), "top_p must be in (0, 1], got 0");
  config.top_p = std::nanf("");
  EXPECT_THAT(Validate(config).message(), HasSubstr("top_p must be in (0, 1], got nan"));
}

TEST(ValidateSamplingParamsTest, TemperatureMessage) {
  SamplingParams config;
  config.temperature = -0.5f;
  EXPECT_EQ(Validate(config).message(), "temperature must be in [0, 100], got -0.5");
  config.temperature = 101.0f;
  EXPECT_EQ(Validate(config).message(), "temperature must be in [0, 100], got 101");
  config.temperature = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
  config.temperature = std::nanf("");
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateSamplingParamsTest, TopKMinPAndLogprobsMessages) {
  SamplingParams config;
  config.top_k = -3;
  EXPECT_EQ(Validate(config).message(), "top_k must be >= 0 (0 = off), got -3");

  config = SamplingParams{};
  config.min_p = 2.0f;
  EXPECT_EQ(Validate(config).message(), "min_p must be in [0, 1], got 2");
  config.min_p = -0.1f;
  EXPECT_EQ(Validate(config).message(), "min_p must be in [0, 1], got -0.1");

  config = SamplingParams{};
  config.num_top_logprobs = 65;
  EXPECT_EQ(Validate(config).message(), "num_top_logprobs must be in [-1, 64] (-1 = none), got 65");
  config.num_top_logprobs = -2;
  EXPECT_EQ(Validate(config).code(), absl::StatusCode::kInvalidArgument);

  config.num_top_logprobs = 5;
  EXPECT_EQ(ValidateSamplingParams(config, 4, "sampling.").message(),
            "sampling.num_top_logprobs 5 exceeds vocab_size 4");
  EXPECT_EQ(ValidateSamplingParams(config, 4).message(), "num_top_logprobs 5 exceeds vocab_size 4");
  EXPECT_EQ(ValidateSamplingParams(SamplingParams{}, 0).message(), "vocab_size must be > 0, got 0");
}

}  // namespace
}  // namespace pagedllm
