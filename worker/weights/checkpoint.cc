#include "worker/weights/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace pagedllm::worker {
namespace {

using Json = nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

absl::Status IndexError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(kIndexFile, ": ", what));
}

// A file name from the index must stay inside the model dir.
bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

// Reads the index's weight_map: tensor name -> file name.
absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  Json json;
  try {
    json = Json::parse(text.str());
  } catch (const Json::exception& e) {
    return IndexError(absl::StrCat("not valid JSON: ", e.what()));
  }
  if (!json.is_object()) return IndexError("not a JSON object");
  auto map_it = json.find("weight_map");
  if (map_it == json.end() || !map_it->is_object()) {
    return IndexError("missing \"weight_map\" object");
  }
  std::map<std::string, std::string> weight_map;
  for (auto it = map_it->begin(); it != map_it->end(); ++it) {
    if (!it->is_string() || !IsSafeRelativePath(it->get<std::string>())) {
      return IndexError(absl::StrCat("tensor ", it.key(), " maps to ", it->dump(),
                                     ", not a file name inside the model dir"));
    }
    weight_map[it.key()] = it->get<std::string>();
  }
  return weight_map;
}

}  // namespace

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  namespace fs = std::filesystem;
  Checkpoint checkpoint;
  checkpoint.dir_ = model_dir;
  std::error_code error;
  const fs::path dir(model_dir);

  if (fs::exists(dir / kSingleFile, error)) {
    PAGEDLLM_ASSIGN_OR_RETURN(SafetensorsFile file,
                              SafetensorsFile::Open((dir / kSingleFile).string()));
    checkpoint.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
    checkpoint.file_names_.push_back(kSingleFile);
    for (const std::string& name : checkpoint.files_[0]->names()) {
      checkpoint.tensors_[name] = Entry{checkpoint.files_[0]->Find(name), 0};
    }
    return checkpoint;
  }
  if (!fs::exists(dir / kIndexFile, error)) {
    return absl::NotFoundError(absl::StrCat("model dir ", model_dir, ": neither ", kSingleFile,
                                            " nor ", kIndexFile, " exists"));
  }

  PAGEDLLM_ASSIGN_OR_RETURN(const auto weight_map, ReadIndex((dir / kIndexFile).string()));
  std::map<std::string, size_t> file_of_name;  // each file opened once
  for (const auto& [tensor, file_name] : weight_map) {
    auto [it, inserted] = file_of_name.emplace(file_name, checkpoint.files_.size());
    if (inserted) {
      PAGEDLLM_ASSIGN_OR_RETURN(SafetensorsFile file,
                                SafetensorsFile::Open((dir / file_name).string()));
      checkpoint.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
      checkpoint.file_names_.push_back(file_name);
    }
    const TensorView* view = checkpoint.files_[it->second]->Find(tensor);
    if (view == nullptr) {
      return IndexError(
          absl::StrCat("tensor ", tensor, " is mapped to ", file_name, ", which does not hold it"));
    }
    checkpoint.tensors_[tensor] = Entry{view, it->second};
  }
  return checkpoint;
}

absl::StatusOr<TensorView> Checkpoint::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("model dir ", dir_, ": tensor ", name, " not found"));
  }
  return *it->second.view;
}

std::string Checkpoint::FileOf(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? std::string() : file_names_[it->second.file];
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace pagedllm::worker
