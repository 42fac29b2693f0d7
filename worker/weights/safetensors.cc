#include "worker/weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace pagedllm::worker {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status InvalidTensor(const std::string& path, const std::string& tensor,
                           const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", tensor, " ", what));
}

bool ParseDType(const std::string& name, WeightDType* dtype) {
  if (name == "F32") {
    *dtype = WeightDType::kF32;
  } else if (name == "BF16") {
    *dtype = WeightDType::kBF16;
  } else if (name == "F16") {
    *dtype = WeightDType::kF16;
  } else {
    return false;
  }
  return true;
}

// A JSON number that is a non-negative integer; false for anything else (floats, negatives, ...).
bool AsUnsigned(const Json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

// Parses one header entry into `view` (data pointer left unset); `begin`/`end` are its offsets
// within the data section, checked against `data_bytes`.
absl::Status ParseEntry(const std::string& path, const std::string& name, const Json& entry,
                        uint64_t data_bytes, TensorView* view, uint64_t* begin, uint64_t* end) {
  if (!entry.is_object())
    return InvalidTensor(path, name, "has a header entry that is not an object");
  view->name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return InvalidTensor(path, name, "has no \"dtype\"");
  if (!dtype_it->is_string())
    return InvalidTensor(path, name, "has a \"dtype\" that is not a string");
  const std::string dtype_name = dtype_it->get<std::string>();
  if (!ParseDType(dtype_name, &view->dtype)) {
    return InvalidTensor(
        path, name,
        absl::StrCat("has dtype ", dtype_name, "; only F32, BF16 and F16 are supported"));
  }

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return InvalidTensor(path, name, "has no \"shape\"");
  if (!shape_it->is_array())
    return InvalidTensor(path, name, "has a \"shape\" that is not an array");
  constexpr size_t kMaxRank = 8;
  if (shape_it->size() > kMaxRank) {
    return InvalidTensor(path, name,
                         absl::StrCat("has rank ", shape_it->size(), ", more than ", kMaxRank));
  }
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& dim_json : *shape_it) {
    uint64_t dim = 0;
    if (!AsUnsigned(dim_json, &dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
      return InvalidTensor(path, name,
                           absl::StrCat("has a shape entry ", dim_json.dump(),
                                        " that is not a non-negative integer"));
    }
    view->shape.push_back(static_cast<int64_t>(dim));
    overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  uint64_t expected_bytes = 0;
  overflow =
      overflow || __builtin_mul_overflow(numel, WeightDTypeSize(view->dtype), &expected_bytes);

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return InvalidTensor(path, name, "has no \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2 || !AsUnsigned((*offsets_it)[0], begin) ||
      !AsUnsigned((*offsets_it)[1], end)) {
    return InvalidTensor(path, name,
                         absl::StrCat("has data_offsets ", offsets_it->dump(),
                                      "; expected [begin, end], two non-negative integers"));
  }
  if (*begin > *end) {
    return InvalidTensor(path, name,
                         absl::StrCat("has data_offsets [", *begin, ", ", *end, "] out of order"));
  }
  if (*end > data_bytes) {
    return InvalidTensor(
        path, name,
        absl::StrCat("has data_offsets [", *begin, ", ", *end,
                     "] past the end of the data section (", data_bytes, " bytes)"));
  }
  if (overflow || *end - *begin != expected_bytes) {
    return InvalidTensor(
        path, name,
        absl::StrCat("holds ", *end - *begin, " bytes, but shape ", ShapeString(view->shape),
                     " of ", WeightDTypeName(view->dtype), " needs ",
                     overflow ? std::string("more than 2^64") : absl::StrCat(expected_bytes)));
  }
  view->bytes = static_cast<size_t>(expected_bytes);
  return absl::OkStatus();
}

}  // namespace

size_t WeightDTypeSize(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kF32:
      return 4;
    case WeightDType::kBF16:
    case WeightDType::kF16:
      return 2;
  }
  PAGEDLLM_CHECK(false, "unknown WeightDType ", static_cast<int>(dtype));
  return 0;
}

const char* WeightDTypeName(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kF32:
      return "F32";
    case WeightDType::kBF16:
      return "BF16";
    case WeightDType::kF16:
      return "F16";
  }
  return "?";
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string what = absl::StrCat(path, ": cannot open: ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(what) : absl::PermissionDeniedError(what);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(path, "is not a regular file");
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    return Invalid(path,
                   absl::StrCat("has ", file_bytes,
                                " bytes, too short for a safetensors header length (8 bytes)"));
  }
  void* mapping = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_error = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": mmap failed: ", std::strerror(mmap_error)));
  }

  SafetensorsFile file;  // unmaps on every error path below
  file.path_ = path;
  file.mapping_ = mapping;
  file.mapping_bytes_ = file_bytes;
  const auto* base = static_cast<const uint8_t*>(mapping);

  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | base[i];
  if (header_bytes > kMaxHeaderBytes) {
    return Invalid(path, absl::StrCat("header length ", header_bytes, " is larger than the limit (",
                                      kMaxHeaderBytes, " bytes)"));
  }
  if (header_bytes > file_bytes - 8) {
    return Invalid(path, absl::StrCat("header length ", header_bytes,
                                      " runs past the end of the file (", file_bytes, " bytes)"));
  }
  const char* header_begin = reinterpret_cast<const char*>(base + 8);
  Json header;
  try {
    header = Json::parse(header_begin, header_begin + header_bytes);
  } catch (const Json::exception& e) {
    // The parser quotes the last token read, which a corrupt header can make huge.
    constexpr size_t kMaxDetail = 200;
    std::string detail = e.what();
    if (detail.size() > kMaxDetail) detail = detail.substr(0, kMaxDetail) + "...";
    return Invalid(path, absl::StrCat("header is not valid JSON: ", detail));
  }
  if (!header.is_object()) return Invalid(path, "header is not a JSON object");

  const uint64_t data_bytes = file_bytes - 8 - header_bytes;
  const uint8_t* data = base + 8 + header_bytes;
  struct Extent {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Extent> extents;
  for (auto it = header.begin(); it != header.end(); ++it) {  // keys in sorted order
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Invalid(path, "\"__metadata__\" is not an object");
      for (auto meta = it->begin(); meta != it->end(); ++meta) {
        if (meta->is_string()) file.metadata_.emplace_back(meta.key(), meta->get<std::string>());
      }
      continue;
    }
    TensorView view;
    uint64_t begin = 0, end = 0;
    PAGEDLLM_RETURN_IF_ERROR(ParseEntry(path, it.key(), *it, data_bytes, &view, &begin, &end));
    view.data = data + begin;
    if (end > begin) extents.push_back({begin, end, file.tensors_.size()});
    file.tensors_.push_back(std::move(view));
  }

  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < extents.size(); ++i) {
    const Extent& prev = extents[i - 1];
    const Extent& next = extents[i];
    if (next.begin < prev.end) {
      return InvalidTensor(path, file.tensors_[next.tensor].name,
                           absl::StrCat("at bytes [", next.begin, ", ", next.end,
                                        ") overlaps tensor ", file.tensors_[prev.tensor].name,
                                        " at bytes [", prev.begin, ", ", prev.end, ")"));
    }
  }
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_[file.tensors_[i].name] = i;
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Unmap(); }

void SafetensorsFile::Unmap() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
  mapping_ = nullptr;
  mapping_bytes_ = 0;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const TensorView& view : tensors_) names.push_back(view.name);
  return names;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace pagedllm::worker
