// Reading safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the data section.
//
//   [ N: u64 LE ][ header: N bytes of JSON ][ data section ......................... ]
//                                          ^ data_offsets are [begin, end) from here
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets"}; an optional
// "__metadata__" entry maps strings to strings. Open() validates all of it before any tensor
// is handed out, so every TensorView lies inside the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace pagedllm::worker {

// Floating-point dtypes a weight may have. Other safetensors dtypes are rejected.
enum class WeightDType : int8_t { kF32, kBF16, kF16 };

size_t WeightDTypeSize(WeightDType dtype);       // 4, 2, 2
const char* WeightDTypeName(WeightDType dtype);  // "F32", "BF16", "F16" (the safetensors names)

// Renders a shape as "[11008, 4096]".
std::string ShapeString(const std::vector<int64_t>& shape);

// One tensor inside a mapped file. Does not own its data: valid while the file that made it lives.
struct TensorView {
  std::string name;
  WeightDType dtype = WeightDType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // little-endian elements, row-major; not necessarily aligned
  size_t bytes = 0;               // = product(shape) * WeightDTypeSize(dtype)

  int64_t numel() const;
};

// A safetensors file mapped read-only into memory. Owns the mapping; move-only. Read-only after
// Open, so it may be shared between threads.
class SafetensorsFile {
 public:
  // Header length above this is treated as corrupt (the format's own limit is 100 MB).
  static constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

  // Maps `path` and validates its header. Errors (NotFound, InvalidArgument) name the file and,
  // where one is at fault, the tensor.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names, sorted.
  std::vector<std::string> names() const;
  size_t size() const { return tensors_.size(); }
  // The tensor called `name`, or nullptr. The pointer lives as long as this file (moves included).
  const TensorView* Find(const std::string& name) const;
  // "__metadata__" entries (string values only).
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void Unmap();

  std::string path_;
  void* mapping_ = nullptr;  // the whole file, PROT_READ
  size_t mapping_bytes_ = 0;
  std::vector<TensorView> tensors_;                 // sorted by name
  absl::flat_hash_map<std::string, size_t> index_;  // name -> position in tensors_
  std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace pagedllm::worker
