#include "text/tokenizer/decode_stream.h"

namespace pagedllm::tokenizer {

DecodeStream::DecodeStream(const Decoder& decoder, bool skip_special_tokens)
    : decoder_(decoder),
      skip_special_tokens_(skip_special_tokens),
      strip_remaining_(decoder.strip_start()) {}

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
  out->append(text);
}

}  // namespace pagedllm::tokenizer
