#include "text/chat_template/chat_template.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "text/chat_template/ast.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/parser.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

// Values nest at most this deep: rendering walks them recursively.
constexpr int kMaxContextDepth = 256;

bool NestsDeeperThan(const nlohmann::ordered_json& json, int limit) {
  if (!json.is_structured()) return false;
  if (limit == 0) return true;
  for (const auto& item : json) {
    if (NestsDeeperThan(item, limit - 1)) return true;
  }
  return false;
}

absl::Status WithOrigin(const absl::Status& status, std::string_view origin) {
  return absl::Status(status.code(),
                      absl::StrCat(Sv(origin), ": chat template ", status.message()));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source, std::string_view origin) {
  absl::StatusOr<Body> body = ParseTemplate(source);
  if (!body.ok()) return WithOrigin(body.status(), origin);
  return ChatTemplate(std::make_shared<const Body>(*std::move(body)), std::string(origin));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                                 const RenderOptions& options) const {
  if (!context.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin_, ": chat template context must be a JSON object"));
  }
  if (NestsDeeperThan(context, kMaxContextDepth)) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin_, ": chat template context nests deeper than ", kMaxContextDepth, " levels"));
  }
  std::tm now{};
  if (options.now.has_value()) {
    now = *options.now;
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &now);
  }
  const Value variables = Value::FromJson(context);
  Evaluator evaluator(now);
  absl::StatusOr<std::string> out = evaluator.Render(*body_, variables.dict());
  if (!out.ok()) return WithOrigin(out.status(), origin_);
  return out;
}

}  // namespace pagedllm::chat_template
