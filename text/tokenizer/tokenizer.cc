// Tokenizer: encoding and decoding. Loading is in tokenizer_load.cc.
#include "text/tokenizer/tokenizer.h"

#include "absl/strings/str_cat.h"
#include "text/tokenizer/bpe_model.h"
#include "text/tokenizer/decode_stream.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/normalizers.h"
#include "text/tokenizer/pre_tokenizers.h"
#include "text/tokenizer/string_keys.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::vocab_size() const { return vocab_size_; }

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < decoder_->size() && decoder_->piece(id).special;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto it = added_ids_.find(Key(token)); it != added_ids_.end()) return it->second;
  return model_->TokenToId(token);
}

absl::Status Tokenizer::EncodeSection(std::string_view text, int section_index,
                                      PreTokenizedText* pieces, std::vector<int32_t>* ids) const {
  pieces->pieces.assign(1, text);
  pieces->storage.clear();
  if (pre_tokenizer_ != nullptr) {
    absl::Status status = pre_tokenizer_->PreTokenize(section_index, pieces);
    if (!status.ok()) return status;
  }
  const size_t first = ids->size();
  for (std::string_view piece : pieces->pieces) model_->Encode(piece, ids);
  if (model_->fuse_unk() && model_->unk_id()) {
    // Consecutive unknowns become one unk_token.
    const int32_t unk = *model_->unk_id();
    size_t out = first;
    for (size_t i = first; i < ids->size(); ++i) {
      if ((*ids)[i] == unk && out > first && (*ids)[out - 1] == unk) continue;
      (*ids)[out++] = (*ids)[i];
    }
    ids->resize(out);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (const size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt is not valid UTF-8 at byte offset ", bad));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special_tokens) ids = prefix_;
  std::vector<Section> sections, subsections;
  raw_matcher_.Split(text, added_tokens_, &sections);
  PreTokenizedText pieces;
  std::string normalized;
  for (size_t k = 0; k < sections.size(); ++k) {
    const Section& section = sections[k];
    if (section.token >= 0) {
      ids.push_back(added_tokens_[section.token].id);
      continue;
    }
    if (section.text.empty()) continue;
    if (auto it = added_ids_.find(Key(section.text)); it != added_ids_.end()) {
      ids.push_back(it->second);  // a whole section spelling a normalized added token
      continue;
    }
    std::string_view section_text = section.text;
    if (normalizer_ != nullptr) {
      normalized.assign(section.text);
      normalizer_->Normalize(&normalized);
      if (normalized.empty()) continue;
      section_text = normalized;
    }
    const int section_index = static_cast<int>(k);
    if (normalized_matcher_.empty()) {
      absl::Status status = EncodeSection(section_text, section_index, &pieces, &ids);
      if (!status.ok()) return status;
      continue;
    }
    normalized_matcher_.Split(section_text, added_tokens_, &subsections);
    for (const Section& sub : subsections) {
      if (sub.token >= 0) {
        ids.push_back(added_tokens_[sub.token].id);
      } else if (!sub.text.empty()) {
        absl::Status status = EncodeSection(sub.text, section_index, &pieces, &ids);
        if (!status.ok()) return status;
      }
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[i], " at position ", i,
                                                     " is outside [0, ", vocab_size_, ")"));
    }
  }
  std::string text;
  DecodeStream stream(*decoder_, skip_special_tokens);
  for (int32_t id : ids) stream.Append(id, &text);
  stream.Finish(&text);
  return text;
}

}  // namespace pagedllm::tokenizer
