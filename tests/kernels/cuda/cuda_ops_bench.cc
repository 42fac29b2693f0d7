// cuda_ops_bench: times CudaOps::Linear at Llama-3-8B decode shapes and the row-wise ops
// (RmsNorm, AddRmsNorm, SiluAndMul) in bf16 with CUDA events, and prints each against its floor:
//   floor = max(bytes moved / copy bandwidth, FLOPs / matrix rate)
// with the copy bandwidth measured in this run (cudaMemcpy device to device, bytes read plus
// written) and the matrix rate both as the nominal 790 TFLOP/s and as measured on an 8192³ bf16
// Linear. Inputs are random (never zeros) and rotate among enough copies to overflow the 50 MB L2,
// so the figures are DRAM figures. The Linear table is cuBLASLt at every m (the bench sets
// PAGEDLLM_CUDA_GEMV=0); the GEMV table times the small-batch kernel (cuda::LaunchGemv) against
// cuBLASLt at m = 1, 2, 4, 8. Usage: cuda_ops_bench [ordinal]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

#include "common/check.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_linear.h"
#include "kernels/ops.h"

namespace pagedllm::kernels {
namespace {

constexpr double kNominalTflops = 790.0;              // bf16 dense, H100 SXM as measured elsewhere
constexpr size_t kRotationBytes = size_t{256} << 20;  // > 5x the L2

// Random bf16 values in ±[2^-7, 1) (never zero), from a fast xorshift.
std::vector<uint16_t> RandomBf16(size_t n, uint64_t seed) {
  std::vector<uint16_t> values(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint16_t& v : values) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const uint32_t r = static_cast<uint32_t>(s >> 16);
    v = static_cast<uint16_t>(((r & 1u) << 15) | ((120u + ((r >> 1) & 7u)) << 7) |
                              ((r >> 4) & 0x7Fu));
  }
  return values;
}

Tensor RandomTensor(CudaDevice& device, std::vector<int64_t> shape, uint64_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  absl::StatusOr<Tensor> t = device.FromHost<uint16_t>(DType::kBFloat16, std::move(shape),
                                                       RandomBf16(static_cast<size_t>(n), seed));
  PAGEDLLM_CHECK_OK(t.status());
  return *std::move(t);
}

// Median milliseconds per call of `call(i)` (i counts calls, for rotating buffers): 5 trials of
// `iterations` calls each between two events, after a warm-up.
double MedianMs(CudaDevice& device, int iterations, const std::function<void(int)>& call) {
  cudaEvent_t start, stop;
  PAGEDLLM_CUDA_CHECK(cudaEventCreate(&start));
  PAGEDLLM_CUDA_CHECK(cudaEventCreate(&stop));
  int index = 0;
  for (int i = 0; i < 3; ++i) call(index++);
  device.Synchronize();
  std::vector<double> trials;
  for (int trial = 0; trial < 5; ++trial) {
    PAGEDLLM_CUDA_CHECK(cudaEventRecord(start, device.stream()));
    for (int i = 0; i < iterations; ++i) call(index++);
    PAGEDLLM_CUDA_CHECK(cudaEventRecord(stop, device.stream()));
    PAGEDLLM_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    PAGEDLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    trials.push_back(ms / iterations);
  }
  PAGEDLLM_CUDA_CHECK(cudaEventDestroy(start));
  PAGEDLLM_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(trials.begin(), trials.end());
  return trials[trials.size() / 2];
}

// Device-to-device copy bandwidth, bytes read plus bytes written per second.
double MeasureCopyBandwidth(CudaDevice& device) {
  const int64_t elements = int64_t{1} << 29;  // 1 GiB of bf16 each way
  absl::StatusOr<Tensor> a = device.Allocate(DType::kBFloat16, {elements});
  absl::StatusOr<Tensor> b = device.Allocate(DType::kBFloat16, {elements});
  PAGEDLLM_CHECK_OK(a.status());
  PAGEDLLM_CHECK_OK(b.status());
  PAGEDLLM_CUDA_CHECK(cudaMemsetAsync(a->raw_data(), 0x3c, a->bytes(), device.stream()));
  const double ms = MedianMs(device, 5, [&](int) {
    PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(b->raw_data(), a->raw_data(), a->bytes(),
                                        cudaMemcpyDeviceToDevice, device.stream()));
  });
  return 2.0 * static_cast<double>(a->bytes()) / (ms * 1e-3);
}

int Copies(size_t bytes_per_call) {
  return static_cast<int>(
      std::max<size_t>(2, (kRotationBytes + bytes_per_call - 1) / bytes_per_call));
}

void BenchLinear(CudaDevice& device, double bandwidth, double measured_tflops) {
  std::printf("\nLinear, bf16 in/out, fp32 accumulation (cuBLASLt); y[m,n] = x[m,k] w[n,k]^T\n");
  std::printf("%5s %6s %6s %9s %8s %8s %9s %6s %9s\n", "m", "n", "k", "us", "TFLOP/s", "GB/s",
              "floor us", "bound", "% floor");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  for (const auto& [n, k] : shapes) {
    const size_t weight_bytes = static_cast<size_t>(n * k) * 2;
    const int copies = Copies(weight_bytes);
    std::vector<Tensor> weights;
    weights.push_back(RandomTensor(device, {n, k}, static_cast<uint64_t>(n + k)));
    for (int c = 1; c < copies; ++c) {
      absl::StatusOr<Tensor> w = device.Allocate(DType::kBFloat16, {n, k});
      PAGEDLLM_CHECK_OK(w.status());
      device.CopyDeviceToDevice(w->raw_data(), weights[0].raw_data(), weight_bytes);
      weights.push_back(*std::move(w));
    }
    for (int64_t m : {1, 32, 256}) {
      const Tensor x = RandomTensor(device, {m, k}, 3);
      absl::StatusOr<Tensor> y = device.Allocate(DType::kBFloat16, {m, n});
      PAGEDLLM_CHECK_OK(y.status());
      const double ms =
          MedianMs(device, 40, [&](int i) { device.ops().Linear(x, weights[i % copies], *y); });
      const double flops = 2.0 * m * n * k;
      const double bytes = static_cast<double>(weight_bytes) + 2.0 * (m * k + m * n);
      const double memory_floor = bytes / bandwidth;
      const double compute_floor = flops / (kNominalTflops * 1e12);
      const double floor = std::max(memory_floor, compute_floor);
      std::printf("%5lld %6lld %6lld %9.2f %8.1f %8.0f %9.2f %6s %8.0f%%\n",
                  static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
                  ms * 1e3, flops / (ms * 1e-3) / 1e12, bytes / (ms * 1e-3) / 1e9, floor * 1e6,
                  memory_floor >= compute_floor ? "bytes" : "flops", floor / (ms * 1e-3) * 100);
    }
  }
  std::printf(
      "(floor: max(bytes / %.2f TB/s measured copy, FLOPs / %.0f TFLOP/s nominal); "
      "measured 8192^3 bf16 Linear: %.0f TFLOP/s)\n",
      bandwidth / 1e12, kNominalTflops, measured_tflops);
}

// Small-batch GEMV (cuda::LaunchGemv) against cuBLASLt (Linear with the GEMV off) on the same
// rotating weights; floor = bytes (weights + x + y) / measured copy bandwidth.
void BenchGemv(CudaDevice& device, double bandwidth) {
  std::printf("\nGEMV (m <= 8), bf16, fp32 accumulation: cuda::LaunchGemv against cuBLASLt\n");
  std::printf("%3s %6s %6s %9s %8s %8s %11s %9s %8s\n", "m", "n", "k", "gemv us", "GB/s", "% floor",
              "cublaslt us", "% floor", "floor us");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  for (const auto& [n, k] : shapes) {
    const size_t weight_bytes = static_cast<size_t>(n * k) * 2;
    const int copies = Copies(weight_bytes);
    std::vector<Tensor> weights;
    for (int c = 0; c < copies; ++c) {
      weights.push_back(RandomTensor(device, {n, k}, static_cast<uint64_t>(n + k + c)));
    }
    for (int64_t m : {1, 2, 4, 8}) {
      const Tensor x = RandomTensor(device, {m, k}, 3);
      absl::StatusOr<Tensor> y = device.Allocate(DType::kBFloat16, {m, n});
      PAGEDLLM_CHECK_OK(y.status());
      const double gemv_ms = MedianMs(device, 40, [&](int i) {
        PAGEDLLM_CHECK(cuda::LaunchGemv(cuda::FloatType::kBFloat16, x.raw_data(),
                                        weights[i % copies].raw_data(), y->raw_data(), m, n, k,
                                        device.stream()),
                       "GEMV does not apply");
      });
      const double cublas_ms =
          MedianMs(device, 40, [&](int i) { device.ops().Linear(x, weights[i % copies], *y); });
      const double bytes = static_cast<double>(weight_bytes) + 2.0 * (m * k + m * n);
      const double floor = bytes / bandwidth;
      std::printf("%3lld %6lld %6lld %9.2f %8.0f %7.0f%% %11.2f %8.0f%% %8.2f\n",
                  static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
                  gemv_ms * 1e3, bytes / (gemv_ms * 1e-3) / 1e9, floor / (gemv_ms * 1e-3) * 100,
                  cublas_ms * 1e3, floor / (cublas_ms * 1e-3) * 100, floor * 1e6);
    }
  }
  std::printf("(floor: bytes / %.2f TB/s measured copy)\n", bandwidth / 1e12);
}

double MeasureGemmPeak(CudaDevice& device) {
  const int64_t s = 8192;
  const Tensor x = RandomTensor(device, {s, s}, 1), w = RandomTensor(device, {s, s}, 2);
  absl::StatusOr<Tensor> y = device.Allocate(DType::kBFloat16, {s, s});
  PAGEDLLM_CHECK_OK(y.status());
  const double ms = MedianMs(device, 10, [&](int) { device.ops().Linear(x, w, *y); });
  return 2.0 * s * s * s / (ms * 1e-3) / 1e12;
}

void BenchRowOps(CudaDevice& device, double bandwidth) {
  std::printf(
      "\nRow-wise ops, bf16, hidden 4096 (SiluAndMul: gate_up [rows, 8192] -> [rows, 4096])\n");
  std::printf("%-11s %5s %9s %8s %9s %8s\n", "op", "rows", "us", "GB/s", "floor us", "% floor");
  const int64_t hidden = 4096;
  const Tensor weight = RandomTensor(device, {hidden}, 5);
  for (int64_t rows : {256, 8192}) {
    const size_t plane = static_cast<size_t>(rows * hidden) * 2;  // one [rows, hidden] bf16
    struct Case {
      const char* name;
      int in_planes, out_planes;  // x (+ residual) read; out (+ residual) written
    };
    for (const Case& c :
         {Case{"RmsNorm", 1, 1}, Case{"AddRmsNorm", 2, 2}, Case{"SiluAndMul", 2, 1}}) {
      const int copies = Copies(plane * (c.in_planes + c.out_planes));
      std::vector<Tensor> inputs, residuals, outputs;
      for (int i = 0; i < copies; ++i) {
        const int64_t in_width = c.name[0] == 'S' ? 2 * hidden : hidden;
        inputs.push_back(RandomTensor(device, {rows, in_width}, 10 + i));
        if (c.name[0] == 'A') residuals.push_back(RandomTensor(device, {rows, hidden}, 100 + i));
        absl::StatusOr<Tensor> out = device.Allocate(DType::kBFloat16, {rows, hidden});
        PAGEDLLM_CHECK_OK(out.status());
        outputs.push_back(*std::move(out));
      }
      const double ms = MedianMs(device, 50, [&](int i) {
        const int j = i % copies;
        if (c.name[0] == 'R') device.ops().RmsNorm(inputs[j], weight, 1e-5f, outputs[j]);
        if (c.name[0] == 'A') {
          device.ops().AddRmsNorm(inputs[j], residuals[j], weight, 1e-5f, outputs[j]);
        }
        if (c.name[0] == 'S') device.ops().SiluAndMul(inputs[j], outputs[j]);
      });
      const double bytes = static_cast<double>(plane) * (c.in_planes + c.out_planes);
      const double floor = bytes / bandwidth;
      std::printf("%-11s %5lld %9.2f %8.0f %9.2f %7.0f%%\n", c.name, static_cast<long long>(rows),
                  ms * 1e3, bytes / (ms * 1e-3) / 1e9, floor * 1e6, floor / (ms * 1e-3) * 100);
    }
  }
}

int Main(int argc, char** argv) {
  const int ordinal = argc > 1 ? std::atoi(argv[1]) : 0;
  setenv("PAGEDLLM_CUDA_GEMV", "0", 1);  // Linear = cuBLASLt; BenchGemv calls the GEMV itself
  absl::StatusOr<std::unique_ptr<CudaDevice>> made = CudaDevice::Create(ordinal);
  PAGEDLLM_CHECK_OK(made.status());
  CudaDevice& device = **made;
  int driver = 0, runtime = 0;
  PAGEDLLM_CUDA_CHECK(cudaDriverGetVersion(&driver));
  PAGEDLLM_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  std::printf("device: %s (driver API %d, runtime %d)\n", device.name().c_str(), driver, runtime);
  const double bandwidth = MeasureCopyBandwidth(device);
  device.EmptyCache();
  std::printf("copy bandwidth (cudaMemcpy D2D, 1 GiB, read + write): %.2f TB/s\n",
              bandwidth / 1e12);
  const double tflops = MeasureGemmPeak(device);
  std::printf("bf16 Linear 8192x8192x8192: %.0f TFLOP/s\n", tflops);
  device.EmptyCache();
  BenchLinear(device, bandwidth, tflops);
  device.EmptyCache();
  BenchGemv(device, bandwidth);
  device.EmptyCache();
  BenchRowOps(device, bandwidth);
  device.Synchronize();
  return 0;
}

}  // namespace
}  // namespace pagedllm::kernels

int main(int argc, char** argv) { return pagedllm::kernels::Main(argc, argv); }
