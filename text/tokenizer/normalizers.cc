#include "text/tokenizer/normalizers.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/string_keys.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

// True when NFC leaves `cp` and its neighbours alone whatever they are: it has no decomposition,
// combining class 0, and never composes with a preceding character.
bool IsNfcInert(char32_t cp) {
  if (cp < 0x300) return true;
  if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2)) return false;  // jamo V, T
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  if (p->combining_class != 0 || p->decomp_seqindex != UINT16_MAX) return false;
  return p->comb_index == UINT16_MAX || p->comb_index < 0x8000;
}

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// NFC never crosses the start of an inert character, so only the stretches around other
// characters go through utf8proc: from the inert character before one (the starter it may
// compose with) to the next inert character.
std::string NfcBySegments(std::string_view text) {
  std::string out;
  size_t copied = 0;      // text[0, copied) is in `out`
  size_t last_inert = 0;  // start of the last inert character seen
  size_t pos = 0;
  while (pos < text.size()) {
    int len;
    if (IsNfcInert(DecodeUtf8At(text, pos, &len))) {
      last_inert = pos;
      pos += len;
      continue;
    }
    const size_t begin = std::max(last_inert, copied);
    size_t end = pos + len;
    while (end < text.size()) {
      int next_len;
      if (IsNfcInert(DecodeUtf8At(text, end, &next_len))) break;
      end += next_len;
    }
    out.append(text.substr(copied, begin - copied));
    out.append(NormalizeUnicode(text.substr(begin, end - begin), UnicodeForm::kNfc));
    copied = pos = end;
  }
  if (copied == 0) return std::string(text);
  out.append(text.substr(copied));
  return out;
}

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(UnicodeForm form) : form_(form) {}
  void Normalize(std::string* text) const override {
    if (IsAscii(*text)) return;  // ASCII is stable under every form
    if (form_ == UnicodeForm::kNfc) {
      *text = NfcBySegments(*text);
    } else {
      *text = NormalizeUnicode(*text, form_);
    }
  }

 private:
  UnicodeForm form_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class LiteralReplaceNormalizer : public Normalizer {
 public:
  LiteralReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    if (text->find(pattern_) != std::string::npos) {
      *text = absl::StrReplaceAll(*text, {{pattern_, content_}});
    }
  }

 private:
  std::string pattern_, content_;
};

class RegexReplaceNormalizer : public Normalizer {
 public:
  RegexReplaceNormalizer(std::unique_ptr<Regex> regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    std::vector<Regex::Match> matches;
    if (!regex_->FindAll(*text, &matches).ok() || matches.empty()) return;
    std::string out;
    size_t prev = 0;
    for (const Regex::Match& m : matches) {
      absl::StrAppend(&out, Key(std::string_view(*text).substr(prev, m.begin - prev)), content_);
      prev = m.end;
    }
    out.append(*text, prev, std::string::npos);
    *text = std::move(out);
  }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    std::string_view view = *text;
    if (left_) view = TrimJsSpaceStart(view);
    if (right_) view = TrimJsSpaceEnd(view);
    if (view.size() != text->size()) *text = std::string(view);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void Normalize(std::string* text) const override {
    for (const auto& step : steps_) step->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::string NormalizeUnicode(std::string_view text, UnicodeForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case UnicodeForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case UnicodeForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case UnicodeForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                            static_cast<utf8proc_ssize_t>(text.size()), &out,
                                            static_cast<utf8proc_option_t>(options));
  if (len < 0) return std::string(text);  // only on invalid UTF-8, which callers never pass
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
  std::free(out);
  return result;
}

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& config,
                                                            const JsonPath& at) {
  auto type = GetType(config, at);
  if (!type.ok()) return type.status();
  if (*type == "NFC") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNfc);
  if (*type == "NFD") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNfd);
  if (*type == "NFKC") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNfkc);
  if (*type == "NFKD") return std::make_unique<UnicodeNormalizer>(UnicodeForm::kNfkd);
  if (*type == "Prepend") {
    auto prepend = GetString(config, at, "prepend");
    if (!prepend.ok()) return prepend.status();
    return std::make_unique<PrependNormalizer>(*std::move(prepend));
  }
  if (*type == "Strip") {
    auto left = GetBoolOr(config, at, "strip_left", true);
    if (!left.ok()) return left.status();
    auto right = GetBoolOr(config, at, "strip_right", true);
    if (!right.ok()) return right.status();
    return std::make_unique<StripNormalizer>(*left, *right);
  }
  if (*type == "Replace") {
    auto content = GetStringOr(config, at, "content", "");
    if (!content.ok()) return content.status();
    auto pattern = OptionalField(config, at, "pattern");
    if (!pattern.ok()) return pattern.status();
    if (*pattern == nullptr) return Malformed(at.Field("pattern"), "is missing");
    const JsonPath pattern_at = at.Field("pattern");
    if ((*pattern)->contains("String")) {
      auto literal = GetString(**pattern, pattern_at, "String");
      if (!literal.ok()) return literal.status();
      if (literal->empty()) return Malformed(pattern_at.Field("String"), "is empty");
      return std::make_unique<LiteralReplaceNormalizer>(*std::move(literal), *std::move(content));
    }
    auto source = GetString(**pattern, pattern_at, "Regex");
    if (!source.ok()) return source.status();
    const std::string what = pattern_at.Field("Regex").ToString();
    auto translated = OnigurumaToPcre2(*source, what);
    if (!translated.ok()) return translated.status();
    auto regex = Regex::Compile(*translated, what);
    if (!regex.ok()) return regex.status();
    return std::make_unique<RegexReplaceNormalizer>(*std::move(regex), *std::move(content));
  }
  if (*type == "Sequence") {
    auto list = OptionalField(config, at, "normalizers");
    if (!list.ok()) return list.status();
    if (*list == nullptr || !(*list)->is_array()) {
      return Malformed(at.Field("normalizers"), "is not an array");
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < (*list)->size(); ++i) {
      auto step = ParseNormalizer((**list)[i], at.Field("normalizers").Index(i));
      if (!step.ok()) return step.status();
      steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  return TypeNotSupported(at, *type);
}

}  // namespace pagedllm::tokenizer
