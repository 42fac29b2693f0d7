// Test helpers: write small safetensors files and synthetic Llama model directories.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagedllm::worker::testing {

struct TensorSpec {
  std::string name;
  std::string dtype = "F32";  // the safetensors name
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // row-major; its size is what data_offsets will span
};

// A fresh empty directory under the test's temp dir.
std::string MakeTempDir(const std::string& name);

// The bytes of a valid safetensors file holding `tensors` back to back, in order; the header is
// padded with spaces to a multiple of 8 bytes, as Hugging Face writes it.
std::string SafetensorsBytes(const std::vector<TensorSpec>& tensors,
                             const std::string& metadata_json = "{\"format\":\"pt\"}");

// A file from a hand-written header: 8-byte length (`header.size()` unless given), header, data.
std::string RawSafetensors(const std::string& header, const std::string& data);
std::string RawSafetensors(uint64_t header_length, const std::string& header,
                           const std::string& data);

void WriteFile(const std::string& path, const std::string& bytes);

std::vector<uint8_t> F32Bytes(const std::vector<float>& values);
// `count` deterministic pseudo-random bytes from `seed`.
std::vector<uint8_t> RandomBytes(size_t count, uint64_t seed);

// A synthetic Llama model small enough to check element by element.
struct SyntheticModel {
  int64_t hidden = 8;
  int64_t intermediate = 12;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t head_dim = 4;
  int64_t vocab = 10;
  int64_t layers = 2;
  bool tied = false;
  bool write_lm_head = true;  // lm_head.weight (ignored when tied and false)
  std::string dtype = "F32";  // all tensors
  int num_files = 1;          // > 1: model-0000i-of-0000n.safetensors + index.json
};

// The config.json text of `model`.
std::string SyntheticConfigJson(const SyntheticModel& model);
// The HF tensors of `model` (name, shape, random bytes).
std::vector<TensorSpec> SyntheticTensors(const SyntheticModel& model);
// Writes config.json and the weights into `dir`.
void WriteSyntheticModel(const std::string& dir, const SyntheticModel& model);

}  // namespace pagedllm::worker::testing
