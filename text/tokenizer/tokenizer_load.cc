// Tokenizer::Load / FromJson: builds the pipeline from tokenizer.json and tokenizer_config.json.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/read_file.h"
#include "text/tokenizer/bpe_model.h"
#include "text/tokenizer/decoder.h"
#include "text/tokenizer/json_fields.h"
#include "text/tokenizer/normalizers.h"
#include "text/tokenizer/post_processor.h"
#include "text/tokenizer/pre_tokenizers.h"
#include "text/tokenizer/tokenizer.h"

namespace pagedllm::tokenizer {
namespace {

constexpr char kTokenizerFile[] = "tokenizer.json";
constexpr char kConfigFile[] = "tokenizer_config.json";

// tokenizer_config.json, the fields that change tokenization.
struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token;
  std::optional<std::string> bos_token, eos_token;
  std::vector<std::string> additional_special_tokens;
};

// A token given as "text" or as {"content": "text", ...}; nullopt for null or absent.
absl::StatusOr<std::optional<std::string>> TokenText(const nlohmann::json& value,
                                                     const JsonPath& at) {
  if (value.is_null()) return std::optional<std::string>();
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_object()) {
    auto content = GetString(value, at, "content");
    if (!content.ok()) return content.status();
    return std::optional<std::string>(*std::move(content));
  }
  return Malformed(at, "is neither a string nor {\"content\": ...}");
}

absl::StatusOr<TokenizerConfig> ParseConfig(const nlohmann::json& json) {
  const JsonPath root{kConfigFile, ""};
  TokenizerConfig config;
  if (!json.is_object()) return Malformed(root, "is not a JSON object");
  for (const char* key : {"add_bos_token", "add_eos_token"}) {
    auto field = OptionalField(json, root, key);
    if (!field.ok()) return field.status();
    if (*field == nullptr) continue;
    if (!(*field)->is_boolean()) return Malformed(root.Field(key), "is not true or false");
    (std::string(key) == "add_bos_token" ? config.add_bos_token : config.add_eos_token) =
        (*field)->get<bool>();
  }
  for (const char* key : {"bos_token", "eos_token"}) {
    if (!json.contains(key)) continue;
    auto text = TokenText(json[key], root.Field(key));
    if (!text.ok()) return text.status();
    (std::string(key) == "bos_token" ? config.bos_token : config.eos_token) = *std::move(text);
  }
  // clean_up_tokenization_spaces is not applied: the tokenizers library (Rust), vLLM and
  // transformers 5 decode without it ("a != b" stays "a != b").
  if (auto extra = OptionalField(json, root, "additional_special_tokens"); !extra.ok()) {
    return extra.status();
  } else if (*extra != nullptr) {
    const JsonPath at = root.Field("additional_special_tokens");
    if (!(*extra)->is_array()) return Malformed(at, "is not an array");
    for (size_t i = 0; i < (*extra)->size(); ++i) {
      auto text = TokenText((**extra)[i], at.Index(i));
      if (!text.ok()) return text.status();
      if (*text) config.additional_special_tokens.push_back(**text);
    }
  }
  for (const char* key : {"split_special_tokens", "remove_space", "do_lowercase_and_remove_accent",
                          "do_lower_case"}) {
    auto value = GetBoolOr(json, root, key, false);
    if (!value.ok()) return value.status();
    if (*value) return NotSupported(root.Field(key), "true");
  }
  return config;
}

absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, const char* file) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& error) {
    // The library's message says where: "parse error at line L, column C: ...".
    return absl::InvalidArgumentError(absl::StrCat(file, ": not valid JSON: ", error.what()));
  }
}

}  // namespace

class TokenizerLoader {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const nlohmann::json& json,
                                                          const TokenizerConfig& config);
};

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerLoader::Build(const nlohmann::json& json,
                                                                  const TokenizerConfig& config) {
  const JsonPath root{kTokenizerFile, ""};
  if (!json.is_object()) return Malformed(root, "is not a JSON object");
  std::unique_ptr<Tokenizer> tok(new Tokenizer());

  // Normalizer, pre-tokenizer, model.
  auto normalizer = OptionalField(json, root, "normalizer");
  if (!normalizer.ok()) return normalizer.status();
  if (*normalizer != nullptr) {
    auto parsed = ParseNormalizer(**normalizer, root.Field("normalizer"));
    if (!parsed.ok()) return parsed.status();
    tok->normalizer_ = *std::move(parsed);
  }
  bool byte_level = false;
  auto pre_tokenizer = OptionalField(json, root, "pre_tokenizer");
  if (!pre_tokenizer.ok()) return pre_tokenizer.status();
  if (*pre_tokenizer != nullptr) {
    auto parsed = ParsePreTokenizer(**pre_tokenizer, root.Field("pre_tokenizer"));
    if (!parsed.ok()) return parsed.status();
    tok->pre_tokenizer_ = std::move(parsed->pre_tokenizer);
    byte_level = parsed->byte_level;
  }
  auto model = OptionalField(json, root, "model");
  if (!model.ok()) return model.status();
  if (*model == nullptr) return Malformed(root.Field("model"), "is missing");
  auto bpe = BpeModel::Parse(**model, root.Field("model"), byte_level);
  if (!bpe.ok()) return bpe.status();
  tok->model_ = *std::move(bpe);

  // Added tokens.
  auto added = OptionalField(json, root, "added_tokens");
  if (!added.ok()) return added.status();
  if (*added != nullptr) {
    auto parsed = ParseAddedTokens(**added, root.Field("added_tokens"));
    if (!parsed.ok()) return parsed.status();
    tok->added_tokens_ = *std::move(parsed);
  }
  absl::flat_hash_set<std::string> special_contents;
  for (size_t i = 0; i < tok->added_tokens_.size(); ++i) {
    const AddedToken& token = tok->added_tokens_[i];
    tok->model_->AddToken(token.content, token.id);
    tok->added_ids_[token.content] = token.id;
    if (token.special) special_contents.insert(token.content);
    if (token.normalized && tok->normalizer_ != nullptr) {
      std::string normalized = token.content;
      tok->normalizer_->Normalize(&normalized);
      tok->normalized_matcher_.Add(normalized, static_cast<int32_t>(i));
      tok->added_ids_.emplace(normalized, token.id);
    } else {
      tok->raw_matcher_.Add(token.content, static_cast<int32_t>(i));
    }
  }
  for (const std::string& extra : config.additional_special_tokens) special_contents.insert(extra);
  tok->vocab_size_ = static_cast<int32_t>(tok->model_->id_to_token().size());
  tok->max_token_text_bytes_ = 1;
  for (const std::string& spelling : tok->model_->id_to_token()) {
    tok->max_token_text_bytes_ = std::max(tok->max_token_text_bytes_, spelling.size());
  }
  for (const AddedToken& token : tok->added_tokens_) {
    tok->max_token_text_bytes_ = std::max(tok->max_token_text_bytes_, token.content.size());
    if (token.lstrip || token.rstrip) {
      tok->max_token_text_bytes_ = 0;
      break;
    }
  }

  // Special tokens around the text.
  auto post = OptionalField(json, root, "post_processor");
  if (!post.ok()) return post.status();
  SpecialTokenTemplate special_template;
  if (*post != nullptr) {
    auto parsed = ParsePostProcessor(**post, root.Field("post_processor"));
    if (!parsed.ok()) return parsed.status();
    special_template = *std::move(parsed);
  }
  const JsonPath config_root{kConfigFile, ""};
  for (const auto& [text, id, key] :
       {std::tuple{&config.bos_token, &tok->bos_token_id_, "bos_token"},
        std::tuple{&config.eos_token, &tok->eos_token_id_, "eos_token"}}) {
    if (!*text) continue;
    *id = tok->TokenToId(**text);
    if (!*id)
      return Malformed(config_root.Field(key), absl::StrCat("\"", **text, "\" is not a token"));
  }
  if (special_template.present) {
    tok->prefix_ = special_template.prefix;
    tok->suffix_ = special_template.suffix;
  } else {
    if (config.add_bos_token.value_or(false)) {
      if (!tok->bos_token_id_)
        return Malformed(config_root.Field("add_bos_token"), "is true but bos_token is not set");
      tok->prefix_ = {*tok->bos_token_id_};
    }
    if (config.add_eos_token.value_or(false)) {
      if (!tok->eos_token_id_)
        return Malformed(config_root.Field("add_eos_token"), "is true but eos_token is not set");
      tok->suffix_ = {*tok->eos_token_id_};
    }
  }
  for (const std::vector<int32_t>* ids : {&tok->prefix_, &tok->suffix_}) {
    for (int32_t id : *ids) {
      if (id >= tok->vocab_size_) {
        return Malformed(root.Field("post_processor"),
                         absl::StrCat("adds token id ", id, ", past the vocabulary"));
      }
    }
  }

  // Decoder.
  auto decoder = OptionalField(json, root, "decoder");
  if (!decoder.ok()) return decoder.status();
  auto parsed_decoder = Decoder::Parse(*decoder, root.Field("decoder"), tok->model_->id_to_token(),
                                       tok->added_tokens_, special_contents);
  if (!parsed_decoder.ok()) return parsed_decoder.status();
  tok->decoder_ = *std::move(parsed_decoder);
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  auto json = ParseJson(tokenizer_json, kTokenizerFile);
  if (!json.ok()) return json.status();
  TokenizerConfig config;
  if (!tokenizer_config_json.empty()) {
    auto config_json = ParseJson(tokenizer_config_json, kConfigFile);
    if (!config_json.ok()) return config_json.status();
    auto parsed = ParseConfig(*config_json);
    if (!parsed.ok()) return parsed.status();
    config = *std::move(parsed);
  }
  return TokenizerLoader::Build(*json, config);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir) {
  const std::string tokenizer_path = absl::StrCat(model_dir, "/", kTokenizerFile);
  auto tokenizer_json = ReadFile(tokenizer_path);
  if (!tokenizer_json.ok()) {
    return absl::NotFoundError(absl::StrCat(tokenizer_path, " not found"));
  }
  std::string config_json;
  const std::string config_path = absl::StrCat(model_dir, "/", kConfigFile);
  if (std::ifstream(config_path).good()) {
    auto read = ReadFile(config_path);
    if (!read.ok()) return read.status();
    config_json = *std::move(read);
  }
  return FromJson(*tokenizer_json, config_json);
}

}  // namespace pagedllm::tokenizer
