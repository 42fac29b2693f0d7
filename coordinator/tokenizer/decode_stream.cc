#include "coordinator/tokenizer/decode_stream.h"

namespace pagedllm::tokenizer {

void LiteralReplacer::Append(std::string_view text, std::string* out) {
  if (pending_.empty() && text.find(from_[0]) == std::string_view::npos) {
    out->append(text);  // nothing here can start a match
    return;
  }
  pending_.append(text);
  size_t pos = 0;
  for (size_t m = pending_.find(from_); m != std::string::npos; m = pending_.find(from_, pos)) {
    out->append(pending_, pos, m - pos);
    out->append(to_);
    pos = m + from_.size();
  }
  // Hold back the longest tail that is a proper prefix of `from_`: only there can a later match
  // begin.
  size_t keep = std::min(from_.size() - 1, pending_.size() - pos);
  for (; keep > 0; --keep) {
    if (pending_.compare(pending_.size() - keep, keep, from_, 0, keep) == 0) break;
  }
  out->append(pending_, pos, pending_.size() - pos - keep);
  pending_.erase(0, pending_.size() - keep);
}

void LiteralReplacer::Finish(std::string* out) {
  out->append(pending_);
  pending_.clear();
}

namespace {

// clean_up_tokenization in the reference, in its order.
constexpr std::string_view kCleanUps[][2] = {
    {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

}  // namespace

DecodeStream::DecodeStream(const Decoder& decoder, bool skip_special_tokens)
    : decoder_(decoder),
      skip_special_tokens_(skip_special_tokens),
      strip_remaining_(decoder.strip_start()),
      clean_ups_{LiteralReplacer(kCleanUps[0][0], kCleanUps[0][1]),
                 LiteralReplacer(kCleanUps[1][0], kCleanUps[1][1]),
                 LiteralReplacer(kCleanUps[2][0], kCleanUps[2][1]),
                 LiteralReplacer(kCleanUps[3][0], kCleanUps[3][1]),
                 LiteralReplacer(kCleanUps[4][0], kCleanUps[4][1]),
                 LiteralReplacer(kCleanUps[5][0], kCleanUps[5][1]),
                 LiteralReplacer(kCleanUps[6][0], kCleanUps[6][1]),
                 LiteralReplacer(kCleanUps[7][0], kCleanUps[7][1]),
                 LiteralReplacer(kCleanUps[8][0], kCleanUps[8][1]),
                 LiteralReplacer(kCleanUps[9][0], kCleanUps[9][1])} {}

void DecodeStream::FlushByteRun(std::string* text) {
  if (byte_run_.empty()) return;
  // The reference decodes each run with a default TextDecoder, which drops a leading BOM.
  std::string_view run = byte_run_;
  if (run.substr(0, 3) == "\xEF\xBB\xBF") run.remove_prefix(3);
  LossyUtf8Decoder decoder;
  decoder.Append(run, text);
  decoder.Finish(text);
  byte_run_.clear();
}

void DecodeStream::Append(int32_t id, std::string* out) {
  const Decoder::Piece piece = decoder_.piece(id);
  if (piece.kind == Decoder::PieceKind::kNone) return;
  if (skip_special_tokens_ && piece.special) return;
  std::string& text = scratch_;
  text.clear();
  switch (decoder_.kind()) {
    case Decoder::Kind::kByteLevel:
      if (piece.kind == Decoder::PieceKind::kVerbatim) {
        lossy_.Finish(&text);
        text.append(piece.text);
      } else {
        lossy_.Append(piece.text, &text);
      }
      break;
    case Decoder::Kind::kPieces:
      if (piece.kind == Decoder::PieceKind::kByte) {
        byte_run_.push_back(static_cast<char>(piece.byte));
      } else {
        FlushByteRun(&text);
        text.append(piece.text);
      }
      break;
    case Decoder::Kind::kMetaspace:
      if (first_token_ && decoder_.strip_first_space() && !piece.text.empty() &&
          piece.text[0] == ' ') {
        text.append(piece.text.substr(1));
      } else {
        text.append(piece.text);
      }
      break;
    case Decoder::Kind::kJoinWithSpace:
      if (!first_token_) text.push_back(' ');
      text.append(piece.text);
      break;
  }
  first_token_ = false;
  Emit(text, out);
}

void DecodeStream::Finish(std::string* out) {
  std::string& text = scratch_;
  text.clear();
  lossy_.Finish(&text);
  FlushByteRun(&text);
  Emit(text, out);
  if (!decoder_.clean_up_spaces()) return;
  // Flush the clean-up chain in order: each stage's held text still goes through the next ones.
  for (int i = 0; i < kNumCleanUps; ++i) {
    stage_[0].clear();
    clean_ups_[i].Finish(&stage_[0]);
    for (int j = i + 1; j < kNumCleanUps && !stage_[0].empty(); ++j) {
      stage_[1].clear();
      clean_ups_[j].Append(stage_[0], &stage_[1]);
      stage_[0].swap(stage_[1]);
    }
    out->append(stage_[0]);
  }
}

void DecodeStream::Emit(std::string_view text, std::string* out) {
  const std::string& content = decoder_.strip_content();
  while (strip_remaining_ > 0 && !text.empty()) {
    if (text.compare(0, content.size(), content) == 0) {
      text.remove_prefix(content.size());
      --strip_remaining_;
    } else {
      strip_remaining_ = 0;
    }
  }
  if (text.empty()) return;
  if (!decoder_.clean_up_spaces()) {
    out->append(text);
    return;
  }
  stage_[0].assign(text);
  for (int i = 0; i < kNumCleanUps; ++i) {
    stage_[1].clear();
    clean_ups_[i].Append(stage_[0], &stage_[1]);
    stage_[0].swap(stage_[1]);
  }
  out->append(stage_[0]);
}

}  // namespace pagedllm::tokenizer
