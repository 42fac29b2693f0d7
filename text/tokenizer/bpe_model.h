// tokenizer.json "model" of type BPE: vocab, ranked merges, byte_fallback (<0xNN> tokens),
// unk_token / fuse_unk and ignore_merges. Merges in both spellings ("a b" and ["a", "b"]).
//
// A pre-token is first split into symbols (one per byte for byte-level vocabularies, whose tokens
// are translated into raw bytes at load; one per character otherwise); then the adjacent pair of
// lowest merge rank, leftmost among equals, is merged until no ranked pair is left. Symbols that
// are not in the vocabulary become their <0xNN> byte tokens (byte_fallback) or unk_token.
//
// Thread safe after loading (Encode is const; its cache is internally synchronized).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "text/tokenizer/json_fields.h"
#include "text/tokenizer/token_cache.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

class BpeModel {
 public:
  // `config` is the "model" object; `byte_level` when the pre-tokenizer hands raw bytes.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Parse(const nlohmann::json& config,
                                                         const JsonPath& at, bool byte_level);

  // Load time only: an added token joins the model's token map (as in the reference, where an
  // added token's content maps to its id wherever the model meets it).
  void AddToken(std::string_view content, int32_t id);  // id >= 0

  // Appends the ids of one pre-token.
  void Encode(std::string_view piece, std::vector<int32_t>* ids) const;

  // The id of `token` as tokenizer.json spells it, if any.
  std::optional<int32_t> TokenToId(std::string_view token) const;

  // Token strings as tokenizer.json spells them, by id ("" where an id has no token).
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  std::optional<int32_t> unk_id() const { return unk_id_; }
  bool fuse_unk() const { return fuse_unk_; }
  bool byte_level() const { return byte_level_; }

  // The merge loop alone, for tests: merges `symbol_ids` (one per initial symbol, -1 for symbols
  // outside the vocabulary) in place, with the scan or the heap algorithm.
  void MergeForTest(std::vector<int32_t>* symbol_ids, bool use_heap) const;

 private:
  struct Symbol {
    int32_t id;      // -1: not in the vocabulary (a single character)
    uint32_t begin;  // bytes of the piece this symbol covers
    uint32_t length;
  };
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };

  BpeModel() = default;
  const Merge* FindMerge(int32_t left, int32_t right) const;
  void Split(std::string_view piece, std::vector<Symbol>* symbols) const;
  void MergeScan(std::vector<Symbol>* symbols) const;
  void MergeHeap(std::vector<Symbol>* symbols) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;
  void CheckWordMarker(std::string_view token);
  void EmitSymbols(std::string_view piece, const std::vector<Symbol>& symbols,
                   std::vector<int32_t>* ids) const;
  std::string ToModelSpace(std::string_view token) const;  // raw bytes when byte_level_
  void BuildByteTables();

  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unk_ = false;
  std::optional<int32_t> unk_id_;
  absl::flat_hash_map<std::string, int32_t> vocab_;  // in model space
  absl::flat_hash_map<uint64_t, Merge> merges_;      // (left id << 32 | right id) -> merge
  std::vector<std::string> id_to_token_;
  int32_t single_byte_ids_[256];    // the token of each single byte (model space), or -1
  int32_t byte_fallback_ids_[256];  // <0xNN>, or -1
  // SentencePiece vocabularies without a pre-tokenizer see whole sections as one piece. When no
  // token has "▁" after another character, no merge can cross the start of a "▁" run, so the
  // piece is cut there and the words are encoded (and cached) one by one, with the same result.
  bool split_at_word_marker_ = false;
  mutable TokenCache cache_;
};

}  // namespace pagedllm::tokenizer
