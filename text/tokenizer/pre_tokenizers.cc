#include "text/tokenizer/pre_tokenizers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "text/tokenizer/string_keys.h"

namespace pagedllm::tokenizer {
namespace {

enum class SplitBehavior { kIsolated, kRemoved };

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior)
      : regex_(std::move(regex)), behavior_(behavior) {}

  absl::Status PreTokenize(int, PreTokenizedText* text) const override {
    text->scratch.clear();
    for (std::string_view piece : text->pieces) {
      text->matches.clear();
      absl::Status status = regex_->FindAll(piece, &text->matches);
      if (!status.ok()) return status;
      size_t prev = 0;
      for (const Regex::Match& m : text->matches) {
        if (m.begin > prev) text->scratch.push_back(piece.substr(prev, m.begin - prev));
        if (behavior_ == SplitBehavior::kIsolated) {
          text->scratch.push_back(piece.substr(m.begin, m.end - m.begin));
        }
        prev = m.end;
      }
      if (prev < piece.size()) text->scratch.push_back(piece.substr(prev));
    }
    text->pieces.swap(text->scratch);
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
};

// On raw bytes (see the header): splits with GPT-2's pattern (\s as Unicode White_Space) and
// keeps the matches only.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  absl::Status PreTokenize(int, PreTokenizedText* text) const override {
    if (add_prefix_space_) {
      for (std::string_view& piece : text->pieces) {
        if (piece.empty() || piece[0] != ' ') piece = text->Keep(absl::StrCat(" ", Key(piece)));
      }
    }
    if (regex_ == nullptr) return absl::OkStatus();
    text->scratch.clear();
    for (std::string_view piece : text->pieces) {
      text->matches.clear();
      absl::Status status = regex_->FindAll(piece, &text->matches);
      if (!status.ok()) return status;
      for (const Regex::Match& m : text->matches) {
        text->scratch.push_back(piece.substr(m.begin, m.end - m.begin));
      }
    }
    text->pieces.swap(text->scratch);
    return absl::OkStatus();
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // null when use_regex is false
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  absl::Status PreTokenize(int section_index, PreTokenizedText* text) const override {
    text->scratch.clear();
    for (std::string_view piece : text->pieces) {
      std::string replaced = absl::StrReplaceAll(Key(piece), {{" ", replacement_}});
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && section_index == 0);
      if (prepend && replaced.compare(0, replacement_.size(), replacement_) != 0) {
        replaced.insert(0, replacement_);
      }
      std::string_view kept = text->Keep(std::move(replaced));
      if (!split_) {
        text->scratch.push_back(kept);
        continue;
      }
      // Each replacement character starts a new piece (HF's MergedWithNext).
      size_t start = 0;
      for (size_t pos = kept.find(replacement_, 1); pos != std::string_view::npos;
           pos = kept.find(replacement_, pos + replacement_.size())) {
        if (pos > start) text->scratch.push_back(kept.substr(start, pos - start));
        start = pos;
      }
      if (start < kept.size()) text->scratch.push_back(kept.substr(start));
    }
    text->pieces.swap(text->scratch);
    return absl::OkStatus();
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}

  absl::Status PreTokenize(int section_index, PreTokenizedText* text) const override {
    for (const auto& step : steps_) {
      absl::Status status = step->PreTokenize(section_index, text);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

absl::StatusOr<std::unique_ptr<Regex>> ParsePattern(const nlohmann::json& config,
                                                    const JsonPath& at) {
  auto pattern = OptionalField(config, at, "pattern");
  if (!pattern.ok()) return pattern.status();
  const JsonPath pattern_at = at.Field("pattern");
  if (*pattern == nullptr) return Malformed(pattern_at, "is missing");
  if ((*pattern)->contains("String")) {
    auto literal = GetString(**pattern, pattern_at, "String");
    if (!literal.ok()) return literal.status();
    if (literal->empty()) return Malformed(pattern_at.Field("String"), "is empty");
    return Regex::CompileLiteral(*literal, pattern_at.Field("String").ToString());
  }
  auto source = GetString(**pattern, pattern_at, "Regex");
  if (!source.ok()) return source.status();
  const std::string what = pattern_at.Field("Regex").ToString();
  auto translated = OnigurumaToPcre2(*source, what);
  if (!translated.ok()) return translated.status();
  return Regex::Compile(*translated, what);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSplit(const nlohmann::json& config,
                                                         const JsonPath& at) {
  auto invert = GetBoolOr(config, at, "invert", false);
  if (!invert.ok()) return invert.status();
  if (*invert) return NotSupported(at.Field("invert"), "true");
  auto behavior = GetString(config, at, "behavior");
  if (!behavior.ok()) return behavior.status();
  SplitBehavior split_behavior;
  if (*behavior == "Isolated") {
    split_behavior = SplitBehavior::kIsolated;
  } else if (*behavior == "Removed") {
    split_behavior = SplitBehavior::kRemoved;
  } else {
    return NotSupported(at.Field("behavior"), absl::StrCat("\"", *behavior, "\""));
  }
  auto regex = ParsePattern(config, at);
  if (!regex.ok()) return regex.status();
  return std::make_unique<SplitPreTokenizer>(*std::move(regex), split_behavior);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseByteLevel(const nlohmann::json& config,
                                                             const JsonPath& at) {
  auto add_prefix_space = GetBoolOr(config, at, "add_prefix_space", false);
  if (!add_prefix_space.ok()) return add_prefix_space.status();
  auto use_regex = GetBoolOr(config, at, "use_regex", true);
  if (!use_regex.ok()) return use_regex.status();
  std::unique_ptr<Regex> regex;
  if (*use_regex) {
    // Unicode White_Space, as Hugging Face's Rust tokenizers (which trained the models) reads \s
    // in this pattern. @huggingface/tokenizers uses JavaScript's \s here instead (U+FEFF in,
    // U+0085 out): checked against Python's tokenizers on the GPU node (tests/gpu).
    const std::string space = kWhiteSpaceClass;
    const std::string pattern =
        absl::StrCat("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^", space, "\\p{L}\\p{N}]+|[",
                     space, "]+(?![^", space, "])|[", space, "]+");
    auto compiled = Regex::Compile(pattern, at.ToString());
    if (!compiled.ok()) return compiled.status();
    regex = *std::move(compiled);
  }
  return std::make_unique<ByteLevelPreTokenizer>(*add_prefix_space, std::move(regex));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const nlohmann::json& config,
                                                             const JsonPath& at) {
  auto replacement = GetStringOr(config, at, "replacement", "\xE2\x96\x81");  // U+2581
  if (!replacement.ok()) return replacement.status();
  if (replacement->empty()) return Malformed(at.Field("replacement"), "is empty");
  PrependScheme scheme = PrependScheme::kAlways;
  auto legacy = GetBoolOr(config, at, "add_prefix_space", true);
  if (!legacy.ok()) return legacy.status();
  if (!*legacy) scheme = PrependScheme::kNever;
  auto name = GetStringOr(config, at, "prepend_scheme", "");
  if (!name.ok()) return name.status();
  if (*name == "always") {
    scheme = PrependScheme::kAlways;
  } else if (*name == "first") {
    scheme = PrependScheme::kFirst;
  } else if (*name == "never") {
    scheme = PrependScheme::kNever;
  } else if (!name->empty()) {
    return NotSupported(at.Field("prepend_scheme"), absl::StrCat("\"", *name, "\""));
  }
  auto split = GetBoolOr(config, at, "split", true);
  if (!split.ok()) return split.status();
  return std::make_unique<MetaspacePreTokenizer>(*std::move(replacement), scheme, *split);
}

// Flattens nested Sequences into `steps`; notes whether the last step is ByteLevel.
absl::Status ParseSteps(const nlohmann::json& config, const JsonPath& at,
                        std::vector<std::unique_ptr<PreTokenizer>>* steps,
                        std::vector<std::string>* types, std::vector<JsonPath>* paths) {
  auto type = GetType(config, at);
  if (!type.ok()) return type.status();
  absl::StatusOr<std::unique_ptr<PreTokenizer>> step;
  if (*type == "Sequence") {
    auto list = OptionalField(config, at, "pretokenizers");
    if (!list.ok()) return list.status();
    if (*list == nullptr || !(*list)->is_array()) {
      return Malformed(at.Field("pretokenizers"), "is not an array");
    }
    for (size_t i = 0; i < (*list)->size(); ++i) {
      absl::Status status =
          ParseSteps((**list)[i], at.Field("pretokenizers").Index(i), steps, types, paths);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (*type == "Split") {
    step = ParseSplit(config, at);
  } else if (*type == "ByteLevel") {
    step = ParseByteLevel(config, at);
  } else if (*type == "Metaspace") {
    step = ParseMetaspace(config, at);
  } else {
    return TypeNotSupported(at, *type);
  }
  if (!step.ok()) return step.status();
  steps->push_back(*std::move(step));
  types->push_back(*type);
  paths->push_back(at);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ParsedPreTokenizer> ParsePreTokenizer(const nlohmann::json& config,
                                                     const JsonPath& at) {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  std::vector<std::string> types;
  std::vector<JsonPath> paths;
  absl::Status status = ParseSteps(config, at, &steps, &types, &paths);
  if (!status.ok()) return status;
  ParsedPreTokenizer parsed;
  bool has_metaspace = false;
  for (size_t i = 0; i < types.size(); ++i) {
    has_metaspace |= types[i] == "Metaspace";
    if (types[i] == "ByteLevel" && i + 1 != types.size()) {
      return NotSupported(paths[i], "ByteLevel before another pre-tokenizer");
    }
  }
  parsed.byte_level = !types.empty() && types.back() == "ByteLevel";
  if (parsed.byte_level && has_metaspace) {
    return NotSupported(at, "Metaspace together with ByteLevel");
  }
  if (steps.size() == 1) {
    parsed.pre_tokenizer = std::move(steps[0]);
  } else {
    parsed.pre_tokenizer = std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  return parsed;
}

}  // namespace pagedllm::tokenizer
