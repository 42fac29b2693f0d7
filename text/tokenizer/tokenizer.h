// The served model's tokenizer, read from Hugging Face's tokenizer.json (+ tokenizer_config.json):
// byte-level BPE with regex pre-tokenization (GPT-2, Llama 3, Qwen 2/3) and SentencePiece-style
// BPE with byte fallback (Llama 2, Mistral), NFC normalization, added / special tokens.
// Results match Hugging Face's tokenizers (checked against @huggingface/tokenizers on a corpus;
// see tests/text/tokenizer). Anything in the files that is not supported fails Load with an error
// naming the file and field, never silently different ids.
//
//   text -> added tokens split out (longest match; lstrip/rstrip/single_word)
//        -> per remaining section: normalizer -> normalized added tokens -> pre-tokenizer
//        -> BPE per piece -> [special prefix] ids [special suffix]
//
// Immutable after Load; every method is const and thread safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "text/tokenizer/added_tokens.h"

namespace pagedllm::tokenizer {

class BpeModel;
class Decoder;
class Normalizer;
class PreTokenizer;
struct PreTokenizedText;

class Tokenizer {
 public:
  // Reads model_dir/tokenizer.json and, when present, model_dir/tokenizer_config.json.
  // NOT_FOUND when tokenizer.json is missing; INVALID_ARGUMENT / UNIMPLEMENTED naming the file
  // and field for anything malformed or unsupported.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir);
  // The same from the files' contents; `tokenizer_config_json` empty when there is none.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // INVALID_ARGUMENT "prompt is not valid UTF-8 at byte offset N" for invalid input.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;
  // INVALID_ARGUMENT naming the first id outside [0, vocab_size()). Bytes that do not form valid
  // UTF-8 decode to U+FFFD.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;  // largest id + 1 over the model vocab and added tokens
  // An upper bound on the bytes of text one token stands for (the longest token spelling), so
  // that a text of more than n * max_token_text_bytes() * 4 bytes (4: what normalization may
  // shrink) encodes to more than n tokens; 0 when there is no bound (an added token that strips
  // the whitespace around it absorbs any amount).
  size_t max_token_text_bytes() const { return max_token_text_bytes_; }
  bool IsSpecial(int32_t id) const;  // what skip_special_tokens drops
  std::optional<int32_t> bos_token_id() const { return bos_token_id_; }  // tokenizer_config.json
  std::optional<int32_t> eos_token_id() const { return eos_token_id_; }

  // The id of a token as tokenizer.json spells it (added tokens included).
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The special tokens Encode adds around the text when add_special_tokens is true.
  const std::vector<int32_t>& special_prefix() const { return prefix_; }
  const std::vector<int32_t>& special_suffix() const { return suffix_; }

  const Decoder& decoder() const { return *decoder_; }

 private:
  Tokenizer();
  absl::Status EncodeSection(std::string_view text, int section_index, PreTokenizedText* pieces,
                             std::vector<int32_t>* ids) const;

  std::vector<AddedToken> added_tokens_;
  AddedTokenMatcher raw_matcher_;         // added tokens matched before normalization
  AddedTokenMatcher normalized_matcher_;  // normalized=true ones, matched after it
  absl::flat_hash_map<std::string, int32_t> added_ids_;  // content (and normalized content) -> id
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<int32_t> prefix_, suffix_;
  std::optional<int32_t> bos_token_id_, eos_token_id_;
  int32_t vocab_size_ = 0;
  size_t max_token_text_bytes_ = 0;

  friend class TokenizerLoader;
};

}  // namespace pagedllm::tokenizer
