#include "text/tokenizer/decoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "text/tokenizer/byte_level.h"

namespace pagedllm::tokenizer {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1.
int ByteFallbackValue(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  const int hi = HexValue(token[3]), lo = HexValue(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Flattens nested Sequences into `steps` (with their paths).
absl::Status Flatten(const nlohmann::json& config, const JsonPath& at,
                     std::vector<std::pair<const nlohmann::json*, JsonPath>>* steps) {
  auto type = GetType(config, at);
  if (!type.ok()) return type.status();
  if (*type != "Sequence") {
    steps->push_back({&config, at});
    return absl::OkStatus();
  }
  auto list = OptionalField(config, at, "decoders");
  if (!list.ok()) return list.status();
  if (*list == nullptr || !(*list)->is_array()) {
    return Malformed(at.Field("decoders"), "is not an array");
  }
  for (size_t i = 0; i < (*list)->size(); ++i) {
    absl::Status status = Flatten((**list)[i], at.Field("decoders").Index(i), steps);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Parse(
    const nlohmann::json* config, const JsonPath& at, const std::vector<std::string>& id_to_token,
    const std::vector<AddedToken>& added_tokens,
    const absl::flat_hash_set<std::string>& special_contents) {
  std::unique_ptr<Decoder> decoder(new Decoder());

  std::vector<std::pair<const nlohmann::json*, JsonPath>> steps;
  if (config != nullptr) {
    absl::Status status = Flatten(*config, at, &steps);
    if (!status.ok()) return status;
  }
  std::vector<std::string> types;
  for (const auto& [step, step_at] : steps) types.push_back(GetType(*step, step_at).value());
  const std::string layout = absl::StrCat("decoder layout [", absl::StrJoin(types, ", "), "]");

  if (types.size() == 1 && types[0] == "ByteLevel") {
    decoder->kind_ = Kind::kByteLevel;
  } else if (types.size() == 1 && types[0] == "Metaspace") {
    decoder->kind_ = Kind::kMetaspace;
    const auto& [step, step_at] = steps[0];
    auto replacement = GetStringOr(*step, step_at, "replacement", "\xE2\x96\x81");
    if (!replacement.ok()) return replacement.status();
    if (replacement->empty()) return Malformed(step_at.Field("replacement"), "is empty");
    decoder->metaspace_replacement_ = *replacement;
    auto scheme = GetStringOr(*step, step_at, "prepend_scheme", "always");
    if (!scheme.ok()) return scheme.status();
    auto legacy = GetBoolOr(*step, step_at, "add_prefix_space", true);
    if (!legacy.ok()) return legacy.status();
    decoder->strip_first_space_ = *scheme != "never" && *legacy;
  } else if (!types.empty()) {
    // [Replace...] [ByteFallback] [Fuse] [Strip]
    decoder->kind_ = Kind::kPieces;
    size_t i = 0;
    for (; i < types.size() && types[i] == "Replace"; ++i) {
      const auto& [step, step_at] = steps[i];
      auto pattern = OptionalField(*step, step_at, "pattern");
      if (!pattern.ok()) return pattern.status();
      if (*pattern == nullptr || !(*pattern)->contains("String")) {
        return NotSupported(step_at.Field("pattern"), "a Replace decoder without a String pattern");
      }
      auto from = GetString(**pattern, step_at.Field("pattern"), "String");
      if (!from.ok()) return from.status();
      if (from->empty()) return Malformed(step_at.Field("pattern").Field("String"), "is empty");
      auto to = GetStringOr(*step, step_at, "content", "");
      if (!to.ok()) return to.status();
      decoder->replacements_.push_back({*std::move(from), *std::move(to)});
    }
    if (i < types.size() && types[i] == "ByteFallback") {
      decoder->byte_fallback_ = true;
      ++i;
    }
    bool fused = false;
    if (i < types.size() && types[i] == "Fuse") {
      fused = true;
      ++i;
    }
    if (i < types.size() && types[i] == "Strip" && fused) {
      const auto& [step, step_at] = steps[i];
      auto content = GetString(*step, step_at, "content");
      if (!content.ok()) return content.status();
      auto start = GetIntOr(*step, step_at, "start", 0);
      if (!start.ok()) return start.status();
      auto stop = GetIntOr(*step, step_at, "stop", 0);
      if (!stop.ok()) return stop.status();
      if (*stop != 0) return NotSupported(step_at.Field("stop"), absl::StrCat(*stop));
      if (*start < 0) return Malformed(step_at.Field("start"), "is negative");
      decoder->strip_content_ = *std::move(content);
      decoder->strip_start_ = static_cast<int>(*start);
      ++i;
    }
    if (i != types.size()) return NotSupported(at, layout);
  }

  // Per-id pieces.
  absl::flat_hash_set<std::string> added_contents;
  for (const AddedToken& token : added_tokens) added_contents.insert(token.content);
  decoder->entries_.resize(id_to_token.size());
  std::string scratch;
  for (size_t id = 0; id < id_to_token.size(); ++id) {
    const std::string& token = id_to_token[id];
    Entry& entry = decoder->entries_[id];
    if (token.empty()) continue;  // no token has this id
    entry.special = special_contents.contains(token);
    std::string_view text = token;
    entry.kind = PieceKind::kText;
    switch (decoder->kind_) {
      case Kind::kByteLevel:
        if (added_contents.contains(token)) {
          entry.kind = PieceKind::kVerbatim;
        } else if (ByteLevelToBytes(token, &scratch)) {
          text = scratch;
        }  // else: a token outside the alphabet decodes to its own UTF-8
        break;
      case Kind::kPieces: {
        scratch = token;
        for (const auto& [from, to] : decoder->replacements_) {
          scratch = absl::StrReplaceAll(scratch, {{from, to}});
        }
        text = scratch;
        const int byte = decoder->byte_fallback_ ? ByteFallbackValue(scratch) : -1;
        if (byte >= 0) {
          entry.kind = PieceKind::kByte;
          entry.byte = static_cast<uint8_t>(byte);
          text = {};
        }
        break;
      }
      case Kind::kMetaspace:
        scratch = absl::StrReplaceAll(token, {{decoder->metaspace_replacement_, " "}});
        text = scratch;
        break;
      case Kind::kJoinWithSpace:
        break;
    }
    entry.offset = static_cast<uint32_t>(decoder->text_.size());
    entry.length = static_cast<uint32_t>(text.size());
    decoder->text_.append(text);
  }
  return decoder;
}

}  // namespace pagedllm::tokenizer
