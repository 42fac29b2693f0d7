// Fuzz of what anyone on the network can send: the public GenerateRequest (bytes decoded as the
// proto, then ValidateGenerateRequest with the bundled model's tokenizer) and the worker hello
// (ValidateHello, CheckSameCluster). Built with AddressSanitizer and UndefinedBehaviorSanitizer;
// bounded in iterations and time. Whatever comes in: no crash, no leak, and what validation lets
// through keeps the promises the engine relies on.
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "coordinator/frontend/request_validation.h"
#include "text/tokenizer/tokenizer.h"
#include "coordinator/worker_link/hello_validation.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator {
namespace {

namespace v1 = pagedllm::v1;
namespace wv1 = pagedllm::worker::v1;

constexpr auto kTimeBudget = std::chrono::seconds(20);

float OddFloat(std::mt19937_64& rng) {
  static const float kValues[] = {0.0f,
                                  -0.0f,
                                  1.0f,
                                  -1.0f,
                                  1e-30f,
                                  1e30f,
                                  100.0f,
                                  100.5f,
                                  0.5f,
                                  std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::denorm_min()};
  return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
}

int64_t OddInt(std::mt19937_64& rng) {
  static const int64_t kValues[] = {0,    1,    -1,        2,         16,         17,
                                    20,   21,   64,        65,        1023,       1024,
                                    4095, 4096, INT32_MAX, INT32_MIN, UINT32_MAX, 1LL << 40};
  return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
}

// Promises a validated request keeps (the engine and workers assume them).
void ExpectSane(const RequestSpec& spec, const ValidationLimits& limits) {
  ASSERT_FALSE(spec.prompt_token_ids.empty());
  ASSERT_LT(spec.prompt_token_ids.size(), static_cast<size_t>(limits.max_model_len));
  for (int32_t id : spec.prompt_token_ids) {
    ASSERT_TRUE(id >= 0 && id < limits.vocab_size) << id;
  }
  ASSERT_GE(spec.max_tokens, 1);
  ASSERT_TRUE(spec.n >= 1 && spec.n <= spec.best_of && spec.best_of <= 16);
  ASSERT_TRUE(ValidateSamplingParams(spec.sampling, limits.vocab_size).ok());
  ASSERT_LE(spec.sampling.num_top_logprobs, 20);
  if (spec.use_beam_search) {
    ASSERT_EQ(spec.sampling.temperature, 0.0f);
  }
  ASSERT_TRUE(std::isfinite(spec.length_penalty));
  for (int32_t id : spec.stop_token_ids) ASSERT_TRUE(id >= 0 && id < limits.vocab_size);
}

// Random bytes make protobuf log every invalid UTF-8 string it meets: keep the output readable.
class EdgeFuzzTest : public ::testing::Test {
 protected:
  void SetUp() override { google::protobuf::SetLogHandler(nullptr); }
};

TEST_F(EdgeFuzzTest, GenerateRequestsNeverCrashTheValidator) {
  auto tokenizer =
      tokenizer::Tokenizer::Load(std::string(PAGEDLLM_SOURCE_DIR) + "/models/pagedllm-tiny-py");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  ValidationLimits limits;
  limits.vocab_size = 4096;
  limits.max_model_len = 1024;
  limits.max_text_bytes = MaxTextBytes(limits.max_model_len, tokenizer->get());
  std::mt19937_64 rng(20261206);
  const auto start = std::chrono::steady_clock::now();
  int accepted = 0, refused = 0, undecodable = 0;
  for (int iteration = 0; iteration < 200000; ++iteration) {
    if (std::chrono::steady_clock::now() - start > kTimeBudget) break;
    v1::GenerateRequest request;
    if (iteration % 3 == 0) {
      // Raw bytes, as a hostile client could send them.
      std::string bytes(rng() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      if (!request.ParseFromString(bytes)) {
        ++undecodable;
        continue;
      }
    } else {
      // A plausible request with odd values in random fields.
      if (rng() % 4 == 0) {
        request.set_text(std::string(rng() % 40, static_cast<char>('a' + rng() % 26)));
      } else if (rng() % 3 == 0) {
        std::string bytes(rng() % 24, '\0');
        for (char& c : bytes) c = static_cast<char>(rng());
        request.set_text_bytes(bytes);
      } else {
        for (int i = static_cast<int>(rng() % 12); i > 0; --i) {
          request.mutable_token_ids()->add_ids(rng() % 8 == 0 ? static_cast<int32_t>(OddInt(rng))
                                                              : static_cast<int32_t>(rng() % 4096));
        }
      }
      v1::SamplingParams* s = request.mutable_sampling();
      if (rng() % 2) s->set_max_tokens(static_cast<uint32_t>(OddInt(rng)));
      if (rng() % 2) s->set_temperature(OddFloat(rng));
      if (rng() % 3 == 0) s->set_top_p(OddFloat(rng));
      if (rng() % 3 == 0) s->set_top_k(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 3 == 0) s->set_min_p(OddFloat(rng));
      if (rng() % 3 == 0) s->set_n(static_cast<uint32_t>(OddInt(rng)));
      if (rng() % 3 == 0) s->set_best_of(static_cast<uint32_t>(OddInt(rng)));
      if (rng() % 4 == 0) s->set_use_beam_search(true);
      if (rng() % 4 == 0) s->set_length_penalty(OddFloat(rng));
      if (rng() % 3 == 0) s->set_logprobs(static_cast<uint32_t>(OddInt(rng)));
      for (int i = static_cast<int>(rng() % 3); i > 0; --i) {
        s->add_stop(std::string(rng() % 3, 'x'));
      }
      if (rng() % 4 == 0) s->add_stop_token_ids(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 8 == 0) request.set_request_id(std::string(rng() % 400, 'r'));
    }
    const tokenizer::Tokenizer* with = rng() % 2 ? tokenizer->get() : nullptr;
    absl::StatusOr<RequestSpec> spec = ValidateGenerateRequest(request, limits, rng(), with);
    if (!spec.ok()) {
      ++refused;
      ASSERT_FALSE(spec.status().message().empty());
      continue;
    }
    ++accepted;
    ExpectSane(*spec, limits);
    if (HasFatalFailure()) return;
  }
  std::printf("requests: %d accepted, %d refused, %d undecodable\n", accepted, refused,
              undecodable);
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

TEST_F(EdgeFuzzTest, WorkerHellosNeverCrashTheHub) {
  std::mt19937_64 rng(7);
  wv1::WorkerHello first;
  first.set_world_size(2);
  first.set_block_size(16);
  first.set_num_kv_blocks(100);
  first.mutable_model()->set_name("m");
  first.mutable_model()->set_vocab_size(4096);
  first.mutable_model()->set_max_position_embeddings(1024);
  const auto start = std::chrono::steady_clock::now();
  int accepted = 0;
  for (int iteration = 0; iteration < 200000; ++iteration) {
    if (std::chrono::steady_clock::now() - start > kTimeBudget) break;
    wv1::WorkerHello hello;
    if (iteration % 2 == 0) {
      std::string bytes(rng() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      if (!hello.ParseFromString(bytes)) continue;
    } else {
      hello = first;
      hello.set_rank(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 2) hello.set_world_size(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 2) hello.set_block_size(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 2) hello.set_num_kv_blocks(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 3 == 0) hello.set_num_swap_blocks(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 3 == 0) hello.mutable_model()->set_vocab_size(static_cast<int32_t>(OddInt(rng)));
      if (rng() % 3 == 0)
        hello.mutable_model()->add_eos_token_ids(static_cast<int32_t>(OddInt(rng)));
    }
    const absl::Status valid = ValidateHello(hello, 2);
    if (!valid.ok()) continue;
    ++accepted;
    ASSERT_TRUE(hello.rank() >= 0 && hello.rank() < 2);
    ASSERT_TRUE(hello.block_size() >= 1 && hello.block_size() <= 1024);
    ASSERT_GE(hello.num_kv_blocks(), 1);
    (void)CheckSameCluster(hello, first);
  }
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace pagedllm::coordinator
