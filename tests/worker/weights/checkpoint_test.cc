#include "worker/weights/checkpoint.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/weights/test_files.h"

namespace pagedllm::worker {
namespace {

using ::testing::HasSubstr;
using testing::SafetensorsBytes;
using testing::WriteFile;

TEST(CheckpointTest, OpensSingleFile) {
  const std::string dir = testing::MakeTempDir("single");
  WriteFile(dir + "/model.safetensors",
            SafetensorsBytes({{"a", "F32", {2}, testing::F32Bytes({1, 2})},
                              {"b", "F32", {1}, testing::F32Bytes({3})}}));
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->num_files(), 1u);
  EXPECT_EQ(checkpoint->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(checkpoint->Has("a"));
  EXPECT_EQ(checkpoint->FileOf("b"), "model.safetensors");
  EXPECT_EQ(checkpoint->FileOf("zzz"), "");
  auto a = checkpoint->Get("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2}));
  float values[2];
  std::memcpy(values, a->data, 8);
  EXPECT_EQ(values[1], 2.0f);

  auto missing = checkpoint->Get("zzz");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "model dir " + dir + ": tensor zzz not found");

  // Views stay valid when the checkpoint moves.
  Checkpoint moved = std::move(checkpoint).value();
  auto b = moved.Get("b");
  ASSERT_TRUE(b.ok());
  std::memcpy(values, b->data, 4);
  EXPECT_EQ(values[0], 3.0f);
}

TEST(CheckpointTest, OpensShardedCheckpointThroughIndex) {
  const std::string dir = testing::MakeTempDir("sharded");
  WriteFile(dir + "/part-1.safetensors",
            SafetensorsBytes({{"a", "F32", {1}, testing::F32Bytes({1})},
                              {"b", "F32", {1}, testing::F32Bytes({2})}}));
  WriteFile(dir + "/part-2.safetensors", SafetensorsBytes({{"c", "BF16", {2}, {1, 2, 3, 4}}}));
  WriteFile(dir + "/model.safetensors.index.json",
            R"({"metadata": {"total_size": 12}, "weight_map": {
                "a": "part-1.safetensors", "b": "part-1.safetensors", "c": "part-2.safetensors"}})");
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->num_files(), 2u);  // part-1 opened once for two tensors
  EXPECT_EQ(checkpoint->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(checkpoint->FileOf("c"), "part-2.safetensors");
  auto c = checkpoint->Get("c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dtype, WeightDType::kBF16);
  EXPECT_EQ(c->data[3], 4);
}

TEST(CheckpointTest, RejectsBadIndex) {
  const std::string dir = testing::MakeTempDir("bad_index");
  WriteFile(dir + "/part-1.safetensors",
            SafetensorsBytes({{"a", "F32", {1}, testing::F32Bytes({1})}}));
  const std::string index = dir + "/model.safetensors.index.json";

  WriteFile(index, R"({"weight_map": {"a": "part-1.safetensors", "b": "part-9.safetensors"}})");
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr("part-9.safetensors"));

  WriteFile(index, R"({"weight_map": {"a": "part-1.safetensors", "b": "part-1.safetensors"}})");
  checkpoint = Checkpoint::Open(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().message(),
            "model.safetensors.index.json: tensor b is mapped to part-1.safetensors, which does "
            "not hold it");

  WriteFile(index, R"({"weight_map": {"a": "../part-1.safetensors"}})");
  EXPECT_THAT(std::string(Checkpoint::Open(dir).status().message()),
              HasSubstr("not a file name inside the model dir"));
  WriteFile(index, R"({"weight_map": {"a": 3}})");
  EXPECT_THAT(std::string(Checkpoint::Open(dir).status().message()),
              HasSubstr("tensor a maps to 3"));
  WriteFile(index, R"({"metadata": {}})");
  EXPECT_THAT(std::string(Checkpoint::Open(dir).status().message()), HasSubstr("weight_map"));
  WriteFile(index, "{nope");
  EXPECT_THAT(std::string(Checkpoint::Open(dir).status().message()), HasSubstr("not valid JSON"));
}

TEST(CheckpointTest, ErrorsFromAFileNameIt) {
  const std::string dir = testing::MakeTempDir("bad_file");
  WriteFile(dir + "/model.safetensors", testing::RawSafetensors("[]", ""));
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr(dir + "/model.safetensors"));
}

TEST(CheckpointTest, MissingWeightsNameTheDir) {
  const std::string dir = testing::MakeTempDir("empty");
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(
      checkpoint.status().message(),
      "model dir " + dir + ": neither model.safetensors nor model.safetensors.index.json exists");
}

}  // namespace
}  // namespace pagedllm::worker
