// Runs under mpirun with any number of ranks, or plainly (world size 1). Every rank runs every
// test; a test must reach each collective on every rank, so data checks use EXPECT (never an
// early return between collectives). Rank 0 prints gtest's usual output; other ranks print
// only their failures, prefixed with their rank.
#include "parallel/mpi_communicator.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "common/check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "parallel/communicator.h"
#include "parallel/mpi_session.h"

namespace pagedllm::parallel {
namespace {

using kernels::DType;
using kernels::Tensor;
using ::testing::HasSubstr;

MpiSession* g_session = nullptr;

// Rank r's test data: a pure function of (seed, r), so every rank knows every rank's data.
std::vector<float> RankData(uint64_t seed, int rank, size_t size) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(rank));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(size);
  for (float& v : values) v = uniform(rng);
  return values;
}

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  MpiCommunicatorTest()
      : device_(kernels::MakeCpuDevice()),
        communicator_(std::make_unique<MpiCommunicator>(*g_session)) {}

  Tensor FromHost(std::vector<int64_t> shape, const std::vector<float>& values) {
    absl::StatusOr<Tensor> tensor = device_->FromHost(DType::kFloat32, std::move(shape), values);
    PAGEDLLM_CHECK_OK(tensor.status());
    return *tensor;
  }
  Tensor Allocate(DType dtype, std::vector<int64_t> shape) {
    absl::StatusOr<Tensor> tensor = device_->Allocate(dtype, std::move(shape));
    PAGEDLLM_CHECK_OK(tensor.status());
    return *tensor;
  }

  int rank() const { return communicator_->rank(); }
  int world() const { return communicator_->world_size(); }

  std::unique_ptr<kernels::Device> device_;
  std::unique_ptr<Communicator> communicator_;  // used through the interface
};

TEST_F(MpiCommunicatorTest, RanksAndHost) {
  EXPECT_EQ(rank(), g_session->rank());
  EXPECT_EQ(world(), g_session->world_size());
  EXPECT_GE(rank(), 0);
  EXPECT_LT(rank(), world());
  // One host here, so the local rank is the world rank.
  EXPECT_EQ(g_session->local_rank(), rank());
  EXPECT_FALSE(Hostname().empty());
  // The ranks agree on their size and see distinct ranks 0..world-1.
  EXPECT_EQ(*g_session->AllReduceMin(world()), world());
  EXPECT_EQ(*g_session->AllReduceMin(-world()), -world());
  EXPECT_EQ(*g_session->AllReduceMin(rank()), 0);
  EXPECT_EQ(*g_session->AllReduceMin(-rank()), -(world() - 1));
  EXPECT_TRUE(communicator_->Barrier().ok());
}

TEST_F(MpiCommunicatorTest, AllReduceMinOfInt64) {
  // Beyond 32 bits, and different on each rank; the minimum is the last rank's.
  const int64_t value = (int64_t{1} << 40) + 1000 - 7 * rank();
  absl::StatusOr<int64_t> min = g_session->AllReduceMin(value);
  ASSERT_TRUE(min.ok()) << min.status();
  EXPECT_EQ(*min, (int64_t{1} << 40) + 1000 - 7 * (world() - 1));
  EXPECT_EQ(*g_session->AllReduceMin(INT64_MIN + rank()), INT64_MIN);
}

TEST_F(MpiCommunicatorTest, BroadcastBytesFromEveryRoot) {
  for (int root = 0; root < world(); ++root) {
    std::vector<uint8_t> data(1000 + root);
    for (size_t i = 0; i < data.size(); ++i) {
      data[i] = static_cast<uint8_t>(rank() == root ? (i * 31 + root) : 0xAB);
    }
    ASSERT_TRUE(g_session->BroadcastBytes(data.data(), data.size(), root).ok());
    for (size_t i = 0; i < data.size(); ++i) {
      ASSERT_EQ(data[i], static_cast<uint8_t>(i * 31 + root)) << "root " << root << " byte " << i;
    }
  }
  // An NCCL unique id is a 128-byte struct.
  struct FakeId {
    char bytes[128];
  } id{};
  if (rank() == 0) std::snprintf(id.bytes, sizeof(id.bytes), "nccl-id-from-%s", "rank0");
  ASSERT_TRUE(g_session->BroadcastBytes(&id, sizeof(id), 0).ok());
  EXPECT_STREQ(id.bytes, "nccl-id-from-rank0");
  EXPECT_TRUE(g_session->BroadcastBytes(nullptr, 0, 0).ok());
  absl::Status bad_root = g_session->BroadcastBytes(&id, sizeof(id), world());
  EXPECT_EQ(bad_root.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_root.message(), HasSubstr("root"));
}

TEST_F(MpiCommunicatorTest, AllReduceSumMatchesReference) {
  uint64_t seed = 1;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {1}, {7}, {3, 5, 11}, {4, 4096}, {(1 << 20) + 3}, {0, 8}}) {
    const size_t numel = static_cast<size_t>(
        std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>()));
    Tensor tensor = FromHost(shape, RankData(seed, rank(), numel));
    ASSERT_TRUE(communicator_->AllReduceSum(tensor).ok());
    const std::vector<float> result = device_->ToHost<float>(tensor);
    std::vector<double> expected(numel, 0.0);
    for (int r = 0; r < world(); ++r) {
      const std::vector<float> part = RankData(seed, r, numel);
      for (size_t i = 0; i < numel; ++i) expected[i] += part[i];
    }
    size_t mismatches = 0;
    for (size_t i = 0; i < numel; ++i) {
      // World-size terms of magnitude <= 1, summed in float in some order.
      if (std::abs(result[i] - expected[i]) > 1e-6 * world()) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u) << "shape " << tensor.ShapeString();

    // Every rank holds bitwise the same sums (gather them all and compare).
    if (numel > 0) {
      std::vector<int64_t> gathered_shape = shape;
      gathered_shape[0] *= world();
      Tensor gathered = Allocate(DType::kFloat32, gathered_shape);
      ASSERT_TRUE(communicator_->AllGather(tensor, gathered).ok());
      const std::vector<float> all = device_->ToHost<float>(gathered);
      for (int r = 0; r < world(); ++r) {
        EXPECT_EQ(std::memcmp(all.data() + r * numel, result.data(), numel * sizeof(float)), 0)
            << "rank " << r << " differs, shape " << tensor.ShapeString();
      }
    }
    ++seed;
  }
}

TEST_F(MpiCommunicatorTest, AllReduceSumOfIntegersIsExact) {
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i * (rank() + 1));
  Tensor tensor = FromHost({10, 100}, values);
  ASSERT_TRUE(communicator_->AllReduceSum(tensor).ok());
  const std::vector<float> result = device_->ToHost<float>(tensor);
  const int64_t rank_factor = int64_t{world()} * (world() + 1) / 2;  // sum of (r + 1)
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(result[i], static_cast<float>(static_cast<int64_t>(i) * rank_factor)) << i;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherIsRankMajor) {
  uint64_t seed = 100;
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{5}, {3, 7}, {2, 3, 4}, {1, 100000}}) {
    const size_t numel = static_cast<size_t>(
        std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>()));
    Tensor input = FromHost(shape, RankData(seed, rank(), numel));
    std::vector<int64_t> output_shape = shape;
    output_shape[0] *= world();
    Tensor output = Allocate(DType::kFloat32, output_shape);
    ASSERT_TRUE(communicator_->AllGather(input, output).ok());
    const std::vector<float> result = device_->ToHost<float>(output);
    ASSERT_EQ(result.size(), numel * world());
    for (int r = 0; r < world(); ++r) {
      const std::vector<float> part = RankData(seed, r, numel);
      EXPECT_EQ(std::memcmp(result.data() + r * numel, part.data(), numel * sizeof(float)), 0)
          << "rows of rank " << r << ", input " << input.ShapeString();
    }
    ++seed;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherInPlace) {
  const std::vector<float> mine = RankData(7, rank(), 2 * 6);
  Tensor output = Allocate(DType::kFloat32, {2 * world(), 6});
  std::vector<float> host(static_cast<size_t>(output.numel()), -1.0f);
  std::copy(mine.begin(), mine.end(), host.begin() + rank() * mine.size());
  device_->CopyHostToDevice(output.raw_data(), host.data(), output.bytes());
  const Tensor own_rows = output.Slice(2 * rank(), 2 * rank() + 2);  // [2, 6]
  ASSERT_TRUE(communicator_->AllGather(own_rows, output).ok());
  const std::vector<float> result = device_->ToHost<float>(output);
  for (int r = 0; r < world(); ++r) {
    const std::vector<float> part = RankData(7, r, mine.size());
    EXPECT_EQ(std::memcmp(result.data() + r * part.size(), part.data(), part.size() * 4), 0)
        << "rank " << r;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherOfInt32) {
  // Token ids travel as int32; AllGather moves any dtype.
  Tensor input = Allocate(DType::kInt32, {3});
  int32_t* in = input.data<int32_t>();
  for (int i = 0; i < 3; ++i) in[i] = 10 * rank() + i;
  Tensor output = Allocate(DType::kInt32, {3 * world()});
  ASSERT_TRUE(communicator_->AllGather(input, output).ok());
  for (int i = 0; i < 3 * world(); ++i) EXPECT_EQ(output.data<int32_t>()[i], 10 * (i / 3) + i % 3);
}

TEST_F(MpiCommunicatorTest, BadArgumentsAreInvalidArgument) {
  // Checked locally before any communication, so every rank fails alike and none hangs.
  Tensor bf16 = Allocate(DType::kBFloat16, {4});
  absl::Status status = communicator_->AllReduceSum(bf16);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("must be float32"));
  EXPECT_EQ(communicator_->AllReduceSum(Tensor()).code(), absl::StatusCode::kInvalidArgument);

  Tensor input = Allocate(DType::kFloat32, {2, 3});
  Tensor wrong_rows = Allocate(DType::kFloat32, {2 * world() + 1, 3});
  status = communicator_->AllGather(input, wrong_rows);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("does not fit input [2, 3] float32"));
  Tensor wrong_rest = Allocate(DType::kFloat32, {2 * world(), 4});
  EXPECT_EQ(communicator_->AllGather(input, wrong_rest).code(), absl::StatusCode::kInvalidArgument);
  Tensor wrong_dtype = Allocate(DType::kInt32, {2 * world(), 3});
  EXPECT_EQ(communicator_->AllGather(input, wrong_dtype).code(),
            absl::StatusCode::kInvalidArgument);
  // Overlapping, but not as this rank's own rows.
  Tensor output = Allocate(DType::kFloat32, {2 * world() + 1, 3});
  const Tensor target = output.Slice(0, 2 * world());
  const Tensor shifted = output.Slice(1, 3);
  status = communicator_->AllGather(shifted, target);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("overlaps"));
}

TEST(MpiCallStatusTest, NamesTheCall) {
  EXPECT_TRUE(MpiCallStatus("MPI_Barrier", 0).ok());  // MPI_SUCCESS is 0
  absl::Status status = MpiCallStatus("MPI_Allreduce", 1 /* MPI_ERR_BUFFER */);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("MPI_Allreduce failed: "));
  EXPECT_THAT(status.message(), HasSubstr("(code 1)"));
}

TEST(MpiSessionTest, SecondInitFailsAndMovesAreInert) {
  absl::StatusOr<MpiSession> second = MpiSession::Init(nullptr, nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("already initialised"));

  // Moving hands MPI over; the moved-from session is inert and may be assigned to again.
  MpiSession moved = std::move(*g_session);
  EXPECT_FALSE(g_session->active());
  EXPECT_TRUE(moved.active());
  EXPECT_TRUE(moved.Barrier().ok());
  *g_session = std::move(moved);
  EXPECT_TRUE(g_session->active());
  EXPECT_FALSE(moved.active());
}

// Prints failures of a rank other than 0 (whose full output is suppressed), with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace pagedllm::parallel

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::StatusOr<pagedllm::parallel::MpiSession> session =
      pagedllm::parallel::MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "MpiSession::Init: %s\n", session.status().ToString().c_str());
    return 1;
  }
  pagedllm::parallel::g_session = &*session;
  if (session->rank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new pagedllm::parallel::RankFailurePrinter(session->rank()));
  }
  const int result = RUN_ALL_TESTS();
  // mpirun fails when any rank exits non-zero; make rank 0's summary tell whether others did.
  absl::StatusOr<int64_t> worst = session->AllReduceMin(-int64_t{result});
  if (session->rank() == 0 && worst.ok() && *worst != 0 && result == 0) {
    std::fprintf(stderr, "another rank failed (see its [rank N] lines)\n");
  }
  return result != 0 || !worst.ok() || *worst != 0 ? 1 : 0;
}
