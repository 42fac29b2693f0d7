// A Hugging Face model directory's weights: model.safetensors, or the files listed by
// model.safetensors.index.json. Each file is mapped once; tensors are looked up by name.
// Owns the mapped files; move-only; read-only after Open, so it may be shared between threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "worker/weights/safetensors.h"

namespace pagedllm::worker {

class Checkpoint {
 public:
  // Opens `model_dir`/model.safetensors, or else `model_dir`/model.safetensors.index.json and
  // every file its weight_map names. NotFound naming the dir when neither exists.
  static absl::StatusOr<Checkpoint> Open(const std::string& model_dir);

  Checkpoint(Checkpoint&&) = default;
  Checkpoint& operator=(Checkpoint&&) = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::string& dir() const { return dir_; }
  // The tensor, or NotFound "model dir X: tensor T not found". Valid while this Checkpoint lives.
  absl::StatusOr<TensorView> Get(const std::string& name) const;
  bool Has(const std::string& name) const { return tensors_.contains(name); }
  // The file name (relative to dir) holding `name`, e.g. "model-00001-of-00002.safetensors";
  // "" when there is no such tensor. For error messages.
  std::string FileOf(const std::string& name) const;
  // All tensor names, sorted.
  std::vector<std::string> names() const;
  size_t num_files() const { return files_.size(); }

 private:
  Checkpoint() = default;

  struct Entry {
    const TensorView* view;
    size_t file;  // index into files_ / file_names_
  };

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_names_;  // relative to dir_
  absl::flat_hash_map<std::string, Entry> tensors_;
};

}  // namespace pagedllm::worker
