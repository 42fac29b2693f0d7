// sample_rows_bench: times CudaOps::SampleRows (CUDA events, median of 5 trials) at batch 1, 32,
// 256 and vocab 32000, 128256, with top_p 0.9 + top_k 50 + temperature 0.8, temperature only,
// greedy + 5 logprobs, and top_p 0.9 + temperature 0.8, and prints each against the floor of
// reading the logits once at 3000 GB/s. Usage: sample_rows_bench [ordinal]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "common/check.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/ops.h"

namespace pagedllm::kernels {
namespace {

constexpr double kBandwidth = 3000e9;  // bytes/s, the floor's DRAM rate

Tensor Make(Device& device, DType dtype, std::vector<int64_t> shape) {
  absl::StatusOr<Tensor> t = device.Allocate(dtype, std::move(shape));
  PAGEDLLM_CHECK_OK(t.status());
  return *std::move(t);
}

double MedianMs(CudaDevice& device, int iterations, const std::function<void()>& call) {
  cudaEvent_t start, stop;
  PAGEDLLM_CUDA_CHECK(cudaEventCreate(&start));
  PAGEDLLM_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) call();
  device.Synchronize();
  std::vector<double> trials;
  for (int trial = 0; trial < 5; ++trial) {
    PAGEDLLM_CUDA_CHECK(cudaEventRecord(start, device.stream()));
    for (int i = 0; i < iterations; ++i) call();
    PAGEDLLM_CUDA_CHECK(cudaEventRecord(stop, device.stream()));
    PAGEDLLM_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    PAGEDLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    trials.push_back(ms / iterations);
  }
  std::sort(trials.begin(), trials.end());
  return trials[2];
}

void Run(int ordinal) {
  absl::StatusOr<std::unique_ptr<Device>> made = MakeCudaDevice(ordinal);
  PAGEDLLM_CHECK_OK(made.status());
  auto& device = static_cast<CudaDevice&>(**made);
  std::printf("%-9s %6s %7s %-22s %10s %10s %7s\n", "dtype", "batch", "vocab", "config", "us",
              "floor_us", "x_floor");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    for (int64_t vocab : {32000, 128256}) {
      for (int64_t batch : {1, 32, 256}) {
        std::vector<float> host(static_cast<size_t>(batch * vocab));
        for (float& x : host) x = normal(rng);
        absl::StatusOr<Tensor> as_float = device.FromHost(DType::kFloat32, {batch, vocab}, host);
        PAGEDLLM_CHECK_OK(as_float.status());
        Tensor logits = Make(device, dtype, {batch, vocab});
        device.ops().Cast(*as_float, logits);
        for (int config = 0; config < 4; ++config) {
          std::vector<SampleRowParams> params(static_cast<size_t>(batch));
          for (int64_t p = 0; p < batch; ++p) {
            params[p].temperature = config == 2 ? 0.0f : 0.8f;
            params[p].top_k = config == 0 ? 50 : 0;
            params[p].top_p = config == 0 || config == 3 ? 0.9f : 1.0f;
            params[p].num_top_logprobs = config == 2 ? 5 : 0;
            params[p].set_seed(static_cast<uint64_t>(p) * 77 + 1);
            params[p].set_draw(3);
          }
          std::vector<int32_t> words(params.size() * kSampleRowParamWords);
          std::memcpy(words.data(), params.data(), params.size() * sizeof(SampleRowParams));
          SampleRowsArgs args;
          args.logits = logits;
          args.vocab_size = vocab;
          absl::StatusOr<Tensor> params_tensor =
              device.FromHost(DType::kInt32, {batch, kSampleRowParamWords}, words);
          PAGEDLLM_CHECK_OK(params_tensor.status());
          args.params = *params_tensor;
          args.token_ids = Make(device, DType::kInt32, {batch});
          args.logprobs = Make(device, DType::kFloat32, {batch});
          if (config == 2) {
            args.top_ids = Make(device, DType::kInt32, {batch, 5});
            args.top_logprobs = Make(device, DType::kFloat32, {batch, 5});
          }
          const double ms = MedianMs(device, 10, [&] { device.ops().SampleRows(args); });
          const double floor_us = static_cast<double>(logits.bytes()) / kBandwidth * 1e6;
          const char* names[] = {"top_p.9,top_k50,T.8", "T.8 only", "greedy+5 logprobs",
                                 "top_p.9,T.8"};
          std::printf("%-9s %6ld %7ld %-22s %10.1f %10.2f %7.1f\n", DTypeName(dtype),
                      static_cast<long>(batch), static_cast<long>(vocab), names[config], ms * 1e3,
                      floor_us, ms * 1e3 / floor_us);
        }
      }
    }
  }
}

}  // namespace
}  // namespace pagedllm::kernels

int main(int argc, char** argv) {
  pagedllm::kernels::Run(argc > 1 ? std::atoi(argv[1]) : 0);
  return 0;
}
