#include "text/tokenizer/post_processor.h"

#include "absl/strings/str_cat.h"

namespace pagedllm::tokenizer {
namespace {

absl::Status ParseTemplate(const nlohmann::json& config, const JsonPath& at,
                           SpecialTokenTemplate* result) {
  auto single = OptionalField(config, at, "single");
  if (!single.ok()) return single.status();
  if (*single == nullptr || !(*single)->is_array()) {
    return Malformed(at.Field("single"), "is not an array");
  }
  auto specials = OptionalField(config, at, "special_tokens");
  if (!specials.ok()) return specials.status();
  bool seen_sequence = false;
  std::vector<int32_t> prefix, suffix;
  for (size_t i = 0; i < (*single)->size(); ++i) {
    const nlohmann::json& item = (**single)[i];
    const JsonPath item_at = at.Field("single").Index(i);
    if (item.is_object() && item.contains("Sequence")) {
      auto id = GetString(item["Sequence"], item_at.Field("Sequence"), "id");
      if (!id.ok()) return id.status();
      if (*id != "A" || seen_sequence) {
        return NotSupported(item_at, absl::StrCat("sequence \"", *id, "\" here"));
      }
      seen_sequence = true;
      continue;
    }
    if (!item.is_object() || !item.contains("SpecialToken")) {
      return Malformed(item_at, "is neither a Sequence nor a SpecialToken");
    }
    auto name = GetString(item["SpecialToken"], item_at.Field("SpecialToken"), "id");
    if (!name.ok()) return name.status();
    const JsonPath special_at = at.Field("special_tokens").Field(*name);
    if (*specials == nullptr || !(*specials)->contains(*name)) {
      return Malformed(special_at, "is missing");
    }
    const nlohmann::json& special = (**specials)[*name];
    auto ids = OptionalField(special, special_at, "ids");
    if (!ids.ok()) return ids.status();
    if (*ids == nullptr || !(*ids)->is_array())
      return Malformed(special_at.Field("ids"), "is not an array");
    for (const nlohmann::json& id : **ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return Malformed(special_at.Field("ids"), "holds an invalid id");
      }
      (seen_sequence ? suffix : prefix).push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  if (!seen_sequence) return NotSupported(at.Field("single"), "a template without sequence A");
  result->present = true;
  result->prefix = std::move(prefix);
  result->suffix = std::move(suffix);
  return absl::OkStatus();
}

// BertProcessing / RobertaProcessing: [cls] A [sep], each given as ["token", id].
absl::Status ParseClsSep(const nlohmann::json& config, const JsonPath& at,
                         SpecialTokenTemplate* result) {
  int32_t ids[2];
  const char* keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; ++k) {
    auto pair = OptionalField(config, at, keys[k]);
    if (!pair.ok()) return pair.status();
    if (*pair == nullptr || !(*pair)->is_array() || (*pair)->size() != 2 ||
        !(**pair)[1].is_number_integer()) {
      return Malformed(at.Field(keys[k]), "is not [\"token\", id]");
    }
    ids[k] = (**pair)[1].get<int32_t>();
  }
  result->present = true;
  result->prefix = {ids[0]};
  result->suffix = {ids[1]};
  return absl::OkStatus();
}

absl::Status ParseInto(const nlohmann::json& config, const JsonPath& at,
                       SpecialTokenTemplate* result) {
  auto type = GetType(config, at);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return absl::OkStatus();
  if (result->present && *type != "Sequence") {
    return NotSupported(at, "a second special-token template");
  }
  if (*type == "TemplateProcessing") return ParseTemplate(config, at, result);
  if (*type == "BertProcessing" || *type == "RobertaProcessing") {
    return ParseClsSep(config, at, result);
  }
  if (*type == "Sequence") {
    auto list = OptionalField(config, at, "processors");
    if (!list.ok()) return list.status();
    if (*list == nullptr || !(*list)->is_array()) {
      return Malformed(at.Field("processors"), "is not an array");
    }
    for (size_t i = 0; i < (*list)->size(); ++i) {
      absl::Status status = ParseInto((**list)[i], at.Field("processors").Index(i), result);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  return TypeNotSupported(at, *type);
}

}  // namespace

absl::StatusOr<SpecialTokenTemplate> ParsePostProcessor(const nlohmann::json& config,
                                                        const JsonPath& at) {
  SpecialTokenTemplate result;
  absl::Status status = ParseInto(config, at, &result);
  if (!status.ok()) return status;
  return result;
}

}  // namespace pagedllm::tokenizer
