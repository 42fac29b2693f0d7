// A bounded, thread-safe map from a pre-token (bytes) to its token ids, so that frequent words
// skip BPE. Sharded by hash, one mutex per shard; a shard that fills up is cleared (no LRU
// bookkeeping on the hot path).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "text/tokenizer/string_keys.h"

namespace pagedllm::tokenizer {

class TokenCache {
 public:
  static constexpr size_t kNumShards = 32;
  static constexpr size_t kMaxKeyBytes = 256;

  explicit TokenCache(size_t capacity_per_shard = 4096) : capacity_per_shard_(capacity_per_shard) {}

  // Appends the cached ids of `key` to `ids`; false when `key` is not cached.
  bool Lookup(std::string_view key, size_t hash, std::vector<int32_t>* ids) const {
    const Shard& shard = shards_[ShardOf(hash)];
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(Key(key), hash);
    if (it == shard.map.end()) return false;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return true;
  }

  void Insert(std::string_view key, size_t hash, const int32_t* ids, size_t num_ids) {
    if (key.size() > kMaxKeyBytes) return;
    Shard& shard = shards_[ShardOf(hash)];
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.map.size() >= capacity_per_shard_) shard.map.clear();
    shard.map.try_emplace(std::string(key), ids, ids + num_ids);
  }

  // The maps' own hash, so that lookups hash once.
  static size_t Hash(std::string_view key) { return absl::Hash<absl::string_view>()(Key(key)); }

 private:
  // The top bits pick the shard: the maps inside use the low bits of the same hash.
  static size_t ShardOf(size_t hash) { return (hash >> 58) % kNumShards; }

  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, absl::InlinedVector<int32_t, 6>> map;
  };
  size_t capacity_per_shard_;
  std::array<Shard, kNumShards> shards_;
};

}  // namespace pagedllm::tokenizer
