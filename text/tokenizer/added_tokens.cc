#include "text/tokenizer/added_tokens.h"

#include <utf8proc.h>

#include "absl/strings/str_cat.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

bool IsWordChar(char32_t cp) {
  if (cp == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Whether a single_word token may match text[begin, end): no word character touches it.
bool AtWordBoundaries(std::string_view text, size_t begin, size_t end) {
  if (begin > 0) {
    size_t start = begin - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    int len;
    if (IsWordChar(DecodeUtf8At(text, start, &len))) return false;
  }
  if (end < text.size()) {
    int len;
    if (IsWordChar(DecodeUtf8At(text, end, &len))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& list,
                                                         const JsonPath& at) {
  if (!list.is_array()) return Malformed(at, "is not an array");
  std::vector<AddedToken> tokens;
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonPath item = at.Index(i);
    AddedToken token;
    auto id = GetIntOr(list[i], item, "id", -1);
    if (!id.ok()) return id.status();
    if (*id < 0 || *id > INT32_MAX) return Malformed(item.Field("id"), "is missing or negative");
    if (*id > kMaxTokenId) {
      return Malformed(item.Field("id"),
                       absl::StrCat("is ", *id, "; ids above ", kMaxTokenId, " are not supported"));
    }
    token.id = static_cast<int32_t>(*id);
    auto content = GetString(list[i], item, "content");
    if (!content.ok()) return content.status();
    if (content->empty()) return Malformed(item.Field("content"), "is empty");
    if (FindInvalidUtf8(*content) != std::string::npos) {
      return Malformed(item.Field("content"), "is not valid UTF-8");
    }
    token.content = *std::move(content);
    struct Flag {
      const char* key;
      bool* value;
    };
    for (Flag flag : {Flag{"single_word", &token.single_word}, Flag{"lstrip", &token.lstrip},
                      Flag{"rstrip", &token.rstrip}, Flag{"special", &token.special}}) {
      auto value = GetBoolOr(list[i], item, flag.key, false);
      if (!value.ok()) return value.status();
      *flag.value = *value;
    }
    auto normalized = GetBoolOr(list[i], item, "normalized", !token.special);
    if (!normalized.ok()) return normalized.status();
    token.normalized = *normalized;
    tokens.push_back(std::move(token));
  }
  return tokens;
}

int32_t AddedTokenMatcher::Child(int32_t node, unsigned char byte) const {
  auto it = children_.find(static_cast<uint32_t>(node) << 8 | byte);
  return it == children_.end() ? -1 : it->second;
}

void AddedTokenMatcher::Add(std::string_view pattern, int32_t token) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    int32_t child = Child(node, byte);
    if (child < 0) {
      child = static_cast<int32_t>(terminal_.size());
      terminal_.push_back(-1);
      children_[static_cast<uint32_t>(node) << 8 | byte] = child;
    }
    node = child;
  }
  if (terminal_[node] < 0) terminal_[node] = token;  // the first token with this text wins
}

void AddedTokenMatcher::Split(std::string_view text, const std::vector<AddedToken>& tokens,
                              std::vector<Section>* sections) const {
  sections->clear();
  size_t start = 0;  // of the pending plain text
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = Child(node, static_cast<unsigned char>(text[j]));
      if (node < 0) break;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        best_end = j + 1;
      }
    }
    if (best < 0 || (tokens[best].single_word && !AtWordBoundaries(text, i, best_end))) {
      ++i;
      continue;
    }
    if (i > start) sections->push_back({text.substr(start, i - start), -1});
    sections->push_back({text.substr(i, best_end - i), best});
    i = start = best_end;
  }
  if (start < text.size()) sections->push_back({text.substr(start), -1});

  for (size_t k = 0; k < sections->size(); ++k) {
    const Section& s = (*sections)[k];
    if (s.token < 0) continue;
    if (tokens[s.token].lstrip && k > 0 && (*sections)[k - 1].token < 0) {
      (*sections)[k - 1].text = TrimJsSpaceEnd((*sections)[k - 1].text);
    }
    if (tokens[s.token].rstrip && k + 1 < sections->size() && (*sections)[k + 1].token < 0) {
      (*sections)[k + 1].text = TrimJsSpaceStart((*sections)[k + 1].text);
    }
  }
}

}  // namespace pagedllm::tokenizer
