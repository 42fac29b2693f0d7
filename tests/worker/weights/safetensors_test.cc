#include "worker/weights/safetensors.h"

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/weights/test_files.h"

namespace pagedllm::worker {
namespace {

using ::testing::HasSubstr;
using testing::RawSafetensors;
using testing::SafetensorsBytes;
using testing::TensorSpec;
using testing::WriteFile;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("safetensors"); }

  // Writes `bytes` to a file and opens it.
  absl::StatusOr<SafetensorsFile> OpenBytes(const std::string& bytes) {
    path_ = dir_ + "/model.safetensors";
    WriteFile(path_, bytes);
    return SafetensorsFile::Open(path_);
  }

  // Opening `bytes` fails with InvalidArgument naming the file and each of `parts`.
  void ExpectInvalid(const std::string& bytes, const std::vector<std::string>& parts) {
    auto file = OpenBytes(bytes);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(path_));
    for (const std::string& part : parts) {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(part));
    }
  }

  std::string dir_;
  std::string path_;
  volatile uint64_t sink_ = 0;
};

TEST_F(SafetensorsTest, OpensValidFile) {
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f};
  auto file = OpenBytes(SafetensorsBytes({
      {"a", "F32", {2, 3}, testing::F32Bytes(a)},
      {"b", "BF16", {4}, {1, 2, 3, 4, 5, 6, 7, 8}},
      {"c", "F16", {1, 1}, {9, 10}},
  }));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(file->size(), 3u);
  const TensorView* view = file->Find("a");
  ASSERT_NE(view, nullptr);
  EXPECT_EQ(view->dtype, WeightDType::kF32);
  EXPECT_EQ(view->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(view->bytes, 24u);
  EXPECT_EQ(view->numel(), 6);
  std::vector<float> read(6);
  std::memcpy(read.data(), view->data, 24);
  EXPECT_EQ(read, a);
  const TensorView* b = file->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, WeightDType::kBF16);
  EXPECT_EQ(std::vector<uint8_t>(b->data, b->data + b->bytes),
            (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(file->Find("c")->dtype, WeightDType::kF16);
  EXPECT_EQ(file->Find("missing"), nullptr);
  ASSERT_EQ(file->metadata().size(), 1u);
  EXPECT_EQ(file->metadata()[0], (std::pair<std::string, std::string>{"format", "pt"}));

  // Moving keeps views valid.
  SafetensorsFile moved = std::move(file).value();
  const TensorView* again = moved.Find("a");
  ASSERT_NE(again, nullptr);
  std::memcpy(read.data(), again->data, 24);
  EXPECT_EQ(read, a);
}

TEST_F(SafetensorsTest, EmptyHeaderAndZeroSizedTensors) {
  auto empty = OpenBytes(RawSafetensors("{}", ""));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->size(), 0u);

  auto zero =
      OpenBytes(SafetensorsBytes({{"z", "F32", {0, 4}, {}}, {"s", "F32", {}, {0, 0, 128, 63}}}));
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->Find("z")->bytes, 0u);
  EXPECT_EQ(zero->Find("s")->numel(), 1);  // a scalar
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open(dir_ + "/nope.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("nope.safetensors"));
}

TEST_F(SafetensorsTest, RejectsTruncatedFile) {
  ExpectInvalid("", {"too short"});
  ExpectInvalid(std::string("\x10\0\0", 3), {"3 bytes"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  ExpectInvalid(RawSafetensors(1000, "{}", ""), {"header length 1000", "past the end"});
  // A valid file cut short inside its header.
  const std::string valid = SafetensorsBytes({{"a", "F32", {2}, testing::F32Bytes({1, 2})}});
  ExpectInvalid(valid.substr(0, 20), {"past the end"});
}

TEST_F(SafetensorsTest, RejectsHugeHeaderLength) {
  ExpectInvalid(RawSafetensors(~uint64_t{0}, "{}", ""), {"limit"});
  ExpectInvalid(RawSafetensors(200'000'000, "{}", ""), {"header length 200000000", "limit"});
}

TEST_F(SafetensorsTest, RejectsInvalidJson) {
  ExpectInvalid(RawSafetensors("{\"a\": {\"dtype\": ", ""), {"not valid JSON"});
  ExpectInvalid(RawSafetensors(std::string("{\0}", 3), ""), {"not valid JSON"});
}

TEST_F(SafetensorsTest, RejectsNonObjectHeader) {
  ExpectInvalid(RawSafetensors("[1, 2, 3]", ""), {"not a JSON object"});
  ExpectInvalid(RawSafetensors("42", ""), {"not a JSON object"});
  ExpectInvalid(RawSafetensors("{\"w\": [1]}", ""), {"tensor w", "not an object"});
  ExpectInvalid(RawSafetensors("{\"__metadata__\": 3}", ""), {"__metadata__"});
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderDoesNotOverflowTheStack) {
  const int depth = 1'000'000;
  ExpectInvalid(RawSafetensors(std::string(depth, '[') + std::string(depth, ']'), ""),
                {"not a JSON object"});
  ExpectInvalid(RawSafetensors("{\"w\": " + std::string(depth, '['), ""), {"not valid JSON"});
}

TEST_F(SafetensorsTest, RejectsMissingOrInvalidFields) {
  const std::string data(8, '\0');
  ExpectInvalid(RawSafetensors(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", data),
                {"tensor w", "dtype"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", data),
      {"tensor w", "dtype"});
  ExpectInvalid(RawSafetensors(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", data),
                {"tensor w", "shape"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data),
      {"tensor w", "-2"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", data),
      {"tensor w", "2.5"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", data),
      {"tensor w", "shape"});
  ExpectInvalid(RawSafetensors(R"({"w": {"dtype": "F32", "shape": [2]}})", data),
                {"tensor w", "data_offsets"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", data),
      {"tensor w", "data_offsets"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}})", data),
      {"tensor w", "data_offsets"});
}

TEST_F(SafetensorsTest, RejectsUnknownDType) {
  ExpectInvalid(RawSafetensors(R"({"ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})",
                               std::string(8, '\0')),
                {"tensor ids", "I64", "F32, BF16 and F16"});
}

TEST_F(SafetensorsTest, RejectsOffsetsOutOfOrderOrPastEnd) {
  const std::string data(8, '\0');
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", data),
      {"tensor w", "out of order"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", data),
      {"tensor w", "past the end of the data section (8 bytes)"});
  ExpectInvalid(
      RawSafetensors(
          R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551615, 18446744073709551615]}})",
          data),
      {"tensor w", "past the end"});
}

TEST_F(SafetensorsTest, RejectsSizeMismatch) {
  const std::string data(16, '\0');
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data),
      {"tensor w", "holds 8 bytes", "[3]", "needs 12"});
  ExpectInvalid(
      RawSafetensors(R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}})", data),
      {"tensor w", "holds 16 bytes", "needs 8"});
  // Element counts that overflow 64 bits.
  ExpectInvalid(
      RawSafetensors(
          R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}})",
          data),
      {"tensor w", "needs more than 2^64"});
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  ExpectInvalid(RawSafetensors(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                               std::string(12, '\0')),
                {"tensor b", "overlaps tensor a"});
  // Identical ranges overlap too.
  ExpectInvalid(RawSafetensors(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                               std::string(8, '\0')),
                {"overlaps"});
}

// Random byte flips and truncations of a valid file: Open returns a status, never crashes, and any
// file it accepts has every tensor inside the file.
TEST_F(SafetensorsTest, FuzzedFilesNeverCrash) {
  const std::string valid = SafetensorsBytes({
      {"model.embed_tokens.weight", "F32", {4, 3}, testing::RandomBytes(48, 1)},
      {"model.norm.weight", "BF16", {3}, testing::RandomBytes(6, 2)},
      {"lm_head.weight", "F16", {2, 2}, testing::RandomBytes(8, 3)},
  });
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string bytes = valid;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Mostly the length and the header, where parsing happens.
        constexpr size_t kDataBytes = 48 + 6 + 8;
        const size_t limit = kind == 1 ? 8 : kind == 2 ? bytes.size() - kDataBytes : bytes.size();
        const size_t pos = rng() % limit;
        bytes[pos] = kind == 2 ? "{}[]\":,0123456789-. eE"[rng() % 22] : static_cast<char>(rng());
      }
    }
    auto file = OpenBytes(bytes);
    if (!file.ok()) {
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(path_));
      continue;
    }
    ++accepted;
    for (const std::string& name : file->names()) {
      const TensorView* view = file->Find(name);
      ASSERT_NE(view, nullptr);
      for (size_t i = 0; i < view->bytes; ++i) sink_ += view->data[i];  // touches every byte
      EXPECT_LE(view->bytes, bytes.size());
    }
  }
  EXPECT_GT(accepted, 0);  // flips in the data section leave the file valid
}

}  // namespace
}  // namespace pagedllm::worker
