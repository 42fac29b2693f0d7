// Helpers shared by the SampleRows tests (CPU: sample_rows_test.cc, CUDA: cuda/...): random rows
// with ties, -inf and NaN, random per-row parameters covering every filter combination, and a
// runner that lays rows out over vocab shards (padding poisoned with huge logits that must never
// win) and poisons every output before the call.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/check.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "kernels/sampling_params.h"

namespace pagedllm::kernels::sample_test {

struct SampleOutputs {
  std::vector<int32_t> tokens;      // [P]
  std::vector<float> logprobs;      // [P]
  std::vector<int32_t> top_ids;     // [P, N]
  std::vector<float> top_logprobs;  // [P, N]
  std::vector<int32_t> num_kept;    // [P]
};

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();
inline constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// A row of `vocab` logits in one of several styles: normal (scale 1..8), coarse (quantised to
// 1/4: many ties), flat (all equal), peaked (one logit far above), with some -inf and NaN.
inline std::vector<float> RandomRow(int64_t vocab, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int style = static_cast<int>(rng() % 6);
  const float scale = 1.0f + static_cast<float>(rng() % 8);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& x : row) x = scale * normal(rng);
  if (style == 1) {
    for (float& x : row) x = std::round(x * 4.0f) / 4.0f;
  } else if (style == 2) {
    std::fill(row.begin(), row.end(), 1.5f);
  } else if (style == 3) {
    row[rng() % vocab] += 40.0f;
  } else if (style == 4) {
    for (float& x : row) x = std::round(x);  // heavy ties
  }
  if (rng() % 3 == 0) {
    for (int i = 0; i < 1 + static_cast<int>(vocab / 50); ++i) row[rng() % vocab] = kNegInf;
  }
  if (rng() % 3 == 0) {
    for (int i = 0; i < 1 + static_cast<int>(vocab / 80); ++i) row[rng() % vocab] = kNan;
  }
  return row;
}

// Parameters covering greedy, every filter alone and combined, extreme temperatures, top_k 1 and
// >= vocab, tiny top_p, min_p near 1.
inline SampleRowParams RandomParams(int64_t vocab, int num_top, std::mt19937_64& rng) {
  const float temperatures[] = {0.0f, 1e-4f, 0.3f, 0.8f, 1.0f, 1.0f, 2.0f, 50.0f};
  const int32_t top_ks[] = {
      0, 0, 0, 1, 5, 50, static_cast<int32_t>(vocab - 1), static_cast<int32_t>(vocab + 5)};
  const float top_ps[] = {1.0f, 1.0f, 0.9f, 0.5f, 0.999f, 1e-7f, 0.95f};
  const float min_ps[] = {0.0f, 0.0f, 0.0f, 0.05f, 0.3f, 0.9f, 1.0f};
  SampleRowParams p;
  p.temperature = temperatures[rng() % 8];
  p.top_k = std::max<int32_t>(0, top_ks[rng() % 8]);
  p.top_p = top_ps[rng() % 7];
  p.min_p = min_ps[rng() % 7];
  p.set_seed(rng());
  p.set_draw(rng() % 3 == 0 ? rng() : rng() % 1000);
  p.num_top_logprobs = num_top == 0 ? 0 : static_cast<int>(rng() % (num_top + 1));
  return p;
}

// `rows` random rows of `vocab` logits, appended to `logits` ([rows, vocab] row-major), each with
// random sampling parameters.
inline void RandomBatch(int64_t vocab, int64_t rows, int num_top, std::mt19937_64& rng,
                        std::vector<float>* logits, std::vector<SampleRowParams>* params) {
  for (int64_t p = 0; p < rows; ++p) {
    const std::vector<float> row = RandomRow(vocab, rng);
    logits->insert(logits->end(), row.begin(), row.end());
    params->push_back(RandomParams(vocab, num_top, rng));
  }
}

template <typename T>
Tensor Upload(Device& device, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  absl::StatusOr<Tensor> tensor = device.FromHost<T>(dtype, std::move(shape), v);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

// Runs SampleRows on `device` with logits (given as float [rows, vocab], converted to `dtype` on
// the device) laid out over `num_shards` shards.
inline SampleOutputs RunSampleRows(Device& device, DType dtype, const std::vector<float>& logits,
                                   int64_t rows, int64_t vocab,
                                   const std::vector<SampleRowParams>& params, int num_top,
                                   int num_shards = 1) {
  const int64_t vocab_local = (vocab + num_shards - 1) / num_shards + (num_shards > 1 ? 1 : 0);
  std::vector<float> laid_out(static_cast<size_t>(num_shards * rows * vocab_local), 3.0e4f);
  for (int r = 0; r < num_shards; ++r) {
    for (int64_t p = 0; p < rows; ++p) {
      for (int64_t c = 0; c < vocab_local && r * vocab_local + c < vocab; ++c) {
        laid_out[(r * rows + p) * vocab_local + c] = logits[p * vocab + r * vocab_local + c];
      }
    }
  }
  Tensor as_float =
      Upload<float>(device, DType::kFloat32, {num_shards * rows, vocab_local}, laid_out);
  Tensor input = as_float;
  if (dtype != DType::kFloat32) {
    absl::StatusOr<Tensor> typed = device.Allocate(dtype, as_float.shape());
    PAGEDLLM_CHECK_OK(typed.status());
    input = *typed;
    device.ops().Cast(as_float, input);
  }
  std::vector<int32_t> words(params.size() * kSampleRowParamWords);
  std::memcpy(words.data(), params.data(), params.size() * sizeof(SampleRowParams));
  SampleRowsArgs args;
  args.logits = input;
  args.num_shards = num_shards;
  args.vocab_size = vocab;
  args.params = Upload<int32_t>(device, DType::kInt32, {rows, kSampleRowParamWords}, words);
  args.token_ids = Upload<int32_t>(device, DType::kInt32, {rows}, std::vector<int32_t>(rows, -7));
  args.logprobs = Upload<float>(device, DType::kFloat32, {rows}, std::vector<float>(rows, kNan));
  args.num_kept = Upload<int32_t>(device, DType::kInt32, {rows}, std::vector<int32_t>(rows, -7));
  if (num_top > 0) {
    args.top_ids = Upload<int32_t>(device, DType::kInt32, {rows, num_top},
                                   std::vector<int32_t>(rows * num_top, -7));
    args.top_logprobs = Upload<float>(device, DType::kFloat32, {rows, num_top},
                                      std::vector<float>(rows * num_top, kNan));
  }
  device.ops().SampleRows(args);
  SampleOutputs out;
  out.tokens = device.ToHost<int32_t>(args.token_ids);
  out.logprobs = device.ToHost<float>(args.logprobs);
  out.num_kept = device.ToHost<int32_t>(args.num_kept);
  if (num_top > 0) {
    out.top_ids = device.ToHost<int32_t>(args.top_ids);
    out.top_logprobs = device.ToHost<float>(args.top_logprobs);
  }
  return out;
}

}  // namespace pagedllm::kernels::sample_test
