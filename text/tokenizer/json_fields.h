// Reading tokenizer.json / tokenizer_config.json fields with errors that name the file and the
// field path, e.g. `tokenizer.json: pre_tokenizer.pretokenizers[1].type "Digits" is not
// supported`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

// Token ids above this are refused at load (the largest vocabularies hold about 256k ids): the
// id -> token table is sized by the largest id, and a stray 2,000,000,000 must not allocate it.
inline constexpr int64_t kMaxTokenId = (1 << 22) - 1;

// Where a JSON value sits: the file name and the path inside it ("decoder.decoders[2]").
struct JsonPath {
  std::string file;
  std::string path;

  JsonPath Field(std::string_view key) const;
  JsonPath Index(size_t index) const;
  std::string ToString() const;  // "tokenizer.json: decoder.decoders[2]"
};

absl::Status Malformed(const JsonPath& at, std::string_view problem);
// UNIMPLEMENTED: `<at> <what> is not supported`.
absl::Status NotSupported(const JsonPath& at, std::string_view what);
// UNIMPLEMENTED naming the component type: `<at>.type "Digits" is not supported`.
absl::Status TypeNotSupported(const JsonPath& at, std::string_view type);

// `object[key]` when present and not null, else nullptr. Fails when `object` is not an object.
absl::StatusOr<const nlohmann::json*> OptionalField(const nlohmann::json& object,
                                                    const JsonPath& at, std::string_view key);
absl::StatusOr<std::string> GetString(const nlohmann::json& object, const JsonPath& at,
                                      std::string_view key);
absl::StatusOr<std::string> GetStringOr(const nlohmann::json& object, const JsonPath& at,
                                        std::string_view key, std::string_view fallback);
absl::StatusOr<bool> GetBoolOr(const nlohmann::json& object, const JsonPath& at,
                               std::string_view key, bool fallback);
absl::StatusOr<int64_t> GetIntOr(const nlohmann::json& object, const JsonPath& at,
                                 std::string_view key, int64_t fallback);
// The component's "type" field.
absl::StatusOr<std::string> GetType(const nlohmann::json& object, const JsonPath& at);

}  // namespace pagedllm::tokenizer
