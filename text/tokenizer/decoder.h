// tokenizer.json "decoder": how ids
// become text. Supported layouts:
//   ByteLevel                                  GPT-2 / Llama 3 / Qwen: tokens spell raw bytes
//   [Replace...] [ByteFallback] [Fuse] [Strip]  SentencePiece BPE (Llama 2, Mistral); Replace
//                                              with String patterns, Strip only after Fuse and
//                                              only at the start
//   Metaspace                                  SentencePiece with a Metaspace decoder
//   null                                       tokens joined with spaces
// Anything else fails to load naming the layout.
//
// Decoding is a stream (DecodeStream): Decode(ids) is "append every id, then finish", and
// an incremental detokenizer is the same stream read as it goes, so the two agree by
// construction. The per-id work is precomputed here, at load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "text/tokenizer/added_tokens.h"
#include "text/tokenizer/json_fields.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

class Decoder {
 public:
  enum class Kind { kByteLevel, kPieces, kMetaspace, kJoinWithSpace };

  // `config` is the "decoder" object or null. `id_to_token` spells every id as tokenizer.json
  // does (added tokens included); `special_contents` are the texts skip_special_tokens drops.
  static absl::StatusOr<std::unique_ptr<Decoder>> Parse(
      const nlohmann::json* config, const JsonPath& at, const std::vector<std::string>& id_to_token,
      const std::vector<AddedToken>& added_tokens,
      const absl::flat_hash_set<std::string>& special_contents);

  // What one id contributes.
  enum class PieceKind : uint8_t {
    kNone,      // an id without a token
    kText,      // text (kByteLevel: raw bytes)
    kByte,      // a <0xNN> byte-fallback token; the byte is `byte`
    kVerbatim,  // kByteLevel: an added token, written as is and ending any pending bytes
  };
  struct Piece {
    PieceKind kind = PieceKind::kNone;
    bool special = false;  // dropped by skip_special_tokens
    uint8_t byte = 0;
    std::string_view text;
  };
  Piece piece(int32_t id) const {
    const Entry& e = entries_[id];
    return {e.kind, e.special, e.byte, std::string_view(text_).substr(e.offset, e.length)};
  }
  int32_t size() const { return static_cast<int32_t>(entries_.size()); }

  Kind kind() const { return kind_; }
  int strip_start() const { return strip_start_; }  // kPieces
  const std::string& strip_content() const { return strip_content_; }
  bool strip_first_space() const { return strip_first_space_; }  // kMetaspace

 private:
  struct Entry {
    uint32_t offset = 0;
    uint32_t length = 0;
    PieceKind kind = PieceKind::kNone;
    bool special = false;
    uint8_t byte = 0;
  };

  Decoder() = default;

  Kind kind_ = Kind::kJoinWithSpace;
  std::vector<std::pair<std::string, std::string>> replacements_;  // kPieces, in order
  bool byte_fallback_ = false;
  int strip_start_ = 0;
  std::string strip_content_;
  std::string metaspace_replacement_;
  bool strip_first_space_ = false;
  std::string text_;            // every piece's text, back to back
  std::vector<Entry> entries_;  // by id
};

}  // namespace pagedllm::tokenizer
