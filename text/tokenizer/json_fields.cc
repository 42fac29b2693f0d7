#include "text/tokenizer/json_fields.h"

#include "absl/strings/str_cat.h"
#include "text/tokenizer/string_keys.h"

namespace pagedllm::tokenizer {

JsonPath JsonPath::Field(std::string_view key) const {
  return {file, path.empty() ? std::string(key) : absl::StrCat(path, ".", Key(key))};
}

JsonPath JsonPath::Index(size_t index) const { return {file, absl::StrCat(path, "[", index, "]")}; }

std::string JsonPath::ToString() const {
  return path.empty() ? file : absl::StrCat(file, ": ", path);
}

absl::Status Malformed(const JsonPath& at, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(at.ToString(), " ", Key(problem)));
}

absl::Status NotSupported(const JsonPath& at, std::string_view what) {
  return absl::UnimplementedError(absl::StrCat(at.ToString(), " ", Key(what), " is not supported"));
}

absl::Status TypeNotSupported(const JsonPath& at, std::string_view type) {
  return absl::UnimplementedError(
      absl::StrCat(at.Field("type").ToString(), " \"", Key(type), "\" is not supported"));
}

absl::StatusOr<const nlohmann::json*> OptionalField(const nlohmann::json& object,
                                                    const JsonPath& at, std::string_view key) {
  if (!object.is_object()) return Malformed(at, "is not a JSON object");
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<std::string> GetString(const nlohmann::json& object, const JsonPath& at,
                                      std::string_view key) {
  auto field = OptionalField(object, at, key);
  if (!field.ok()) return field.status();
  if (*field == nullptr) return Malformed(at.Field(key), "is missing");
  if (!(*field)->is_string()) return Malformed(at.Field(key), "is not a string");
  return (*field)->get<std::string>();
}

absl::StatusOr<std::string> GetStringOr(const nlohmann::json& object, const JsonPath& at,
                                        std::string_view key, std::string_view fallback) {
  auto field = OptionalField(object, at, key);
  if (!field.ok()) return field.status();
  if (*field == nullptr) return std::string(fallback);
  if (!(*field)->is_string()) return Malformed(at.Field(key), "is not a string");
  return (*field)->get<std::string>();
}

absl::StatusOr<bool> GetBoolOr(const nlohmann::json& object, const JsonPath& at,
                               std::string_view key, bool fallback) {
  auto field = OptionalField(object, at, key);
  if (!field.ok()) return field.status();
  if (*field == nullptr) return fallback;
  if (!(*field)->is_boolean()) return Malformed(at.Field(key), "is not true or false");
  return (*field)->get<bool>();
}

absl::StatusOr<int64_t> GetIntOr(const nlohmann::json& object, const JsonPath& at,
                                 std::string_view key, int64_t fallback) {
  auto field = OptionalField(object, at, key);
  if (!field.ok()) return field.status();
  if (*field == nullptr) return fallback;
  if (!(*field)->is_number_integer()) return Malformed(at.Field(key), "is not an integer");
  return (*field)->get<int64_t>();
}

absl::StatusOr<std::string> GetType(const nlohmann::json& object, const JsonPath& at) {
  return GetString(object, at, "type");
}

}  // namespace pagedllm::tokenizer
