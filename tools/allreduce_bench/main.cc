// pagedllm-allreduce-bench: latency and bandwidth of the project's all-reduce (the Communicator
// the workers use: MpiCommunicator on the CPU, NcclCommunicator on CUDA), one process per rank:
//   mpirun --bind-to none -np 8 pagedllm-allreduce-bench --device cuda --dtype bfloat16
// For each size it first checks the sum (rank r holds a known pattern; every rank compares the
// result with the sum computed on the host), then times warm iterations on a zeroed tensor:
//   mean_us / min_us: each iteration alone (AllReduceSum, then Device::Synchronize), as a decode
//                     step sees one all-reduce; the slowest rank's mean and min.
//   loop_us:          iterations back to back, one Synchronize at the end, divided by the count
//                     (nccl-tests' time); the slowest rank's.
//   algbw_GBps = bytes / loop_us; busbw_GBps = algbw * 2 (n - 1) / n (nccl-tests' definitions).
// Rank 0 prints one line per size:
//   allreduce ranks 2 dtype bfloat16 elements 4096 bytes 8192 mean_us 20.1 min_us 18.3
//   loop_us 15.2 algbw_GBps 0.54 busbw_GBps 0.54
// Any error (bad flag, allocation, wrong sum, transport) is logged and ends the whole job with
// MPI_Abort, so no rank is left waiting in a collective.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags_usage.h"
#include "common/logging.h"
#include "common/status.h"
#include "kernels/cpu/half_conversion.h"
#include "kernels/device.h"
#include "parallel/communicator.h"
#include "parallel/mpi_session.h"
#include "parallel/rank_setup.h"

ABSL_FLAG(std::string, device, "cpu", "cpu (MPI, float32 only) or cuda (NCCL)");
ABSL_FLAG(std::string, dtype, "bfloat16", "bfloat16, float16 or float32");
ABSL_FLAG(std::string, sizes, "",
          "comma-separated element counts (suffix K = 1024, M = 1048576); empty: the decode "
          "all-reduce sizes of hidden 4096 and 8192 (Llama-3-8B/70B) at batch 1, 8, 64, 256, "
          "then 1M, 16M, 64M");
ABSL_FLAG(int, iters, 100, "timed iterations per size (each way: synced and back to back)");
ABSL_FLAG(int, warmup, 10, "untimed iterations per size first");

namespace pagedllm::tools {
namespace {

using kernels::DType;
using kernels::Tensor;
using Clock = std::chrono::steady_clock;

std::vector<int64_t> DefaultSizes() {
  std::vector<int64_t> sizes;
  for (int64_t hidden : {4096, 8192}) {
    for (int64_t batch : {1, 8, 64, 256}) sizes.push_back(hidden * batch);
  }
  for (int64_t mega : {1, 16, 64}) sizes.push_back(mega << 20);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

absl::StatusOr<std::vector<int64_t>> ParseSizes(const std::string& text) {
  if (text.empty()) return DefaultSizes();
  std::vector<int64_t> sizes;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t scale = 1;
    absl::string_view digits = item;
    if (!digits.empty() && (digits.back() == 'K' || digits.back() == 'k')) scale = 1 << 10;
    if (!digits.empty() && (digits.back() == 'M' || digits.back() == 'm')) scale = 1 << 20;
    if (scale != 1) digits.remove_suffix(1);
    int64_t count = 0;
    if (!absl::SimpleAtoi(digits, &count) || count <= 0 || count > (int64_t{1} << 40) / scale) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sizes: \"", item, "\" is not a positive element count"));
    }
    sizes.push_back(count * scale);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("--sizes lists no size");
  return sizes;
}

// Rank r's value at element i: an integer in [-8, 8], periodic in i (period 17), so every
// partial sum over up to 32 ranks is an integer of magnitude <= 256, exact in every dtype.
float PatternValue(int64_t i, int rank) { return static_cast<float>((i * 7 + rank * 3) % 17 - 8); }

// Host bytes of `values` in `dtype` (float32, bfloat16 or float16).
std::vector<uint8_t> Encode(DType dtype, int64_t count, int rank) {
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * kernels::DTypeSize(dtype));
  for (int64_t i = 0; i < count; ++i) {
    const float value = PatternValue(i % 17, rank);
    if (dtype == DType::kFloat32) {
      std::memcpy(bytes.data() + 4 * i, &value, 4);
    } else {
      const uint16_t bits =
          dtype == DType::kBFloat16 ? kernels::FloatToBFloat16(value) : kernels::FloatToHalf(value);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    }
  }
  return bytes;
}

float Decode(DType dtype, const uint8_t* bytes, int64_t i) {
  if (dtype == DType::kFloat32) {
    float value;
    std::memcpy(&value, bytes + 4 * i, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes + 2 * i, 2);
  return dtype == DType::kBFloat16 ? kernels::BFloat16ToFloat(bits) : kernels::HalfToFloat(bits);
}

// The largest `value` over all ranks (through the session's min).
absl::StatusOr<int64_t> MaxOverRanks(const parallel::MpiSession& mpi, int64_t value) {
  PAGEDLLM_ASSIGN_OR_RETURN(int64_t negated, mpi.AllReduceMin(-value));
  return -negated;
}

// All-reduces rank-specific patterns and compares the result with the host's sum. Every rank
// reaches the same verdict (the mismatch count is shared), so all fail together.
absl::Status CheckSum(const parallel::MpiSession& mpi, kernels::Device& device,
                      parallel::Communicator& comm, const Tensor& tensor) {
  const int64_t count = tensor.numel();
  const std::vector<uint8_t> input = Encode(tensor.dtype(), count, mpi.rank());
  device.CopyHostToDevice(tensor.raw_data(), input.data(), input.size());
  PAGEDLLM_RETURN_IF_ERROR(comm.AllReduceSum(tensor));
  std::vector<uint8_t> output(tensor.bytes());
  device.CopyDeviceToHost(output.data(), tensor.raw_data(), output.size());
  device.Synchronize();
  float expected[17];
  for (int64_t p = 0; p < 17; ++p) {
    expected[p] = 0;
    for (int r = 0; r < mpi.world_size(); ++r) expected[p] += PatternValue(p, r);
  }
  int64_t mismatches = 0;
  std::string first;
  for (int64_t i = 0; i < count; ++i) {
    const float got = Decode(tensor.dtype(), output.data(), i);
    if (got != expected[i % 17]) {
      if (mismatches++ == 0) {
        first = absl::StrCat("rank ", mpi.rank(), " element ", i, ": got ", got, ", want ",
                             expected[i % 17]);
      }
    }
  }
  if (mismatches > 0) {
    PAGEDLLM_LOG(ERROR) << "wrong all-reduce sum at " << first;
  }
  PAGEDLLM_ASSIGN_OR_RETURN(int64_t worst, MaxOverRanks(mpi, mismatches));
  if (worst > 0) {
    return absl::DataLossError(absl::StrCat("AllReduceSum of ", tensor.ShapeString(), " over ",
                                            mpi.world_size(), " ranks: up to ", worst,
                                            " wrong elements on a rank (see the rank logs)"));
  }
  return absl::OkStatus();
}

struct Timing {
  double mean_us = 0;
  double min_us = 0;
  double loop_us = 0;
};

absl::StatusOr<Timing> Time(const parallel::MpiSession& mpi, kernels::Device& device,
                            parallel::Communicator& comm, const Tensor& tensor, int iters,
                            int warmup) {
  // Zeros stay zeros: the timed sums never overflow or go subnormal.
  const std::vector<uint8_t> zeros(tensor.bytes(), 0);
  device.CopyHostToDevice(tensor.raw_data(), zeros.data(), zeros.size());
  for (int i = 0; i < warmup; ++i) PAGEDLLM_RETURN_IF_ERROR(comm.AllReduceSum(tensor));
  device.Synchronize();
  PAGEDLLM_RETURN_IF_ERROR(comm.Barrier());

  int64_t total_ns = 0;
  int64_t min_ns = INT64_MAX;
  for (int i = 0; i < iters; ++i) {
    const Clock::time_point start = Clock::now();
    PAGEDLLM_RETURN_IF_ERROR(comm.AllReduceSum(tensor));
    device.Synchronize();
    const int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    total_ns += ns;
    min_ns = std::min(min_ns, ns);
  }
  PAGEDLLM_RETURN_IF_ERROR(comm.Barrier());
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < iters; ++i) PAGEDLLM_RETURN_IF_ERROR(comm.AllReduceSum(tensor));
  device.Synchronize();
  const int64_t loop_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();

  Timing timing;
  PAGEDLLM_ASSIGN_OR_RETURN(int64_t slowest_total, MaxOverRanks(mpi, total_ns));
  PAGEDLLM_ASSIGN_OR_RETURN(int64_t slowest_min, MaxOverRanks(mpi, min_ns));
  PAGEDLLM_ASSIGN_OR_RETURN(int64_t slowest_loop, MaxOverRanks(mpi, loop_ns));
  timing.mean_us = 1e-3 * static_cast<double>(slowest_total) / iters;
  timing.min_us = 1e-3 * static_cast<double>(slowest_min);
  timing.loop_us = 1e-3 * static_cast<double>(slowest_loop) / iters;
  return timing;
}

absl::Status Run(const parallel::MpiSession& mpi) {
  PAGEDLLM_ASSIGN_OR_RETURN(const DType dtype, kernels::DTypeFromName(absl::GetFlag(FLAGS_dtype)));
  if (dtype == DType::kInt32) {
    return absl::InvalidArgumentError("--dtype must be bfloat16, float16 or float32, got int32");
  }
  const std::string device_name = absl::GetFlag(FLAGS_device);
  if (device_name == "cpu" && dtype != DType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat("--dtype ", kernels::DTypeName(dtype),
                                                   ": the CPU backend (MPI) all-reduces float32 "
                                                   "only; use --dtype float32"));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes,
                            ParseSizes(absl::GetFlag(FLAGS_sizes)));
  const int iters = absl::GetFlag(FLAGS_iters);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  if (iters < 1 || warmup < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--iters must be >= 1 and --warmup >= 0, got ", iters, " and ", warmup));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<kernels::Device> device,
                            parallel::OpenRankDevice(mpi, device_name));
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<parallel::Communicator> comm,
                            parallel::OpenCommunicator(mpi, *device));

  const int n = mpi.world_size();
  if (mpi.rank() == 0) {
    std::printf("# pagedllm-allreduce-bench: %d ranks, rank 0 on %s (%s), dtype %s, %d iters\n", n,
                device->name().c_str(), parallel::Hostname().c_str(), kernels::DTypeName(dtype),
                iters);
    std::printf("# mean_us/min_us: one synced all-reduce; loop_us: back to back (bandwidths)\n");
    std::fflush(stdout);
  }
  for (const int64_t count : sizes) {
    PAGEDLLM_ASSIGN_OR_RETURN(Tensor tensor, device->Allocate(dtype, {count}));  // [count]
    PAGEDLLM_RETURN_IF_ERROR(CheckSum(mpi, *device, *comm, tensor));
    PAGEDLLM_ASSIGN_OR_RETURN(const Timing timing,
                              Time(mpi, *device, *comm, tensor, iters, warmup));
    if (mpi.rank() == 0) {
      const double bytes = static_cast<double>(tensor.bytes());
      const double algbw = bytes / (timing.loop_us * 1e3);  // bytes per ns = GB/s
      const double busbw = algbw * 2.0 * (n - 1) / n;
      std::printf(
          "allreduce ranks %d dtype %s elements %lld bytes %zu mean_us %.2f min_us %.2f "
          "loop_us %.2f algbw_GBps %.3f busbw_GBps %.3f\n",
          n, kernels::DTypeName(dtype), static_cast<long long>(count), tensor.bytes(),
          timing.mean_us, timing.min_us, timing.loop_us, algbw, busbw);
      std::fflush(stdout);
    }
  }
  return comm->Barrier();
}

}  // namespace
}  // namespace pagedllm::tools

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage(
      "mpirun -np N pagedllm-allreduce-bench [--device cpu|cuda] [--dtype bfloat16] "
      "[--sizes 4096,1M] [--iters 100]");
  absl::ParseCommandLine(argc, argv);
  return pagedllm::parallel::RunUnderMpi(
      &argc, &argv, "allreduce-bench",
      [](pagedllm::parallel::MpiSession& mpi) { return pagedllm::tools::Run(mpi); });
}
