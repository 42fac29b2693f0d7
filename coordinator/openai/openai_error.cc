#include "coordinator/openai/openai_error.h"

#include "absl/strings/str_replace.h"
#include "coordinator/openai/openai_request.h"
#include "nlohmann/json.hpp"

namespace pagedllm::openai {

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ClientMessage(const absl::Status& status) {
  return absl::StrReplaceAll(
      status.message(),
      {{"sampling.", ""}, {"prompt.token_ids", "prompt"}, {"prompt.text", "prompt"}});
}

std::string ErrorBody(const absl::Status& status, const std::string& code,
                      const std::string& param) {
  const int http_status = HttpStatusOf(status.code());
  const char* type = http_status == 401   ? "authentication_error"
                     : http_status == 404 ? "not_found_error"
                     : http_status == 429 ? "rate_limit_error"
                     : http_status >= 500 ? "server_error"
                                          : "invalid_request_error";
  nlohmann::ordered_json error;
  error["message"] = ClientMessage(status);
  error["type"] = type;
  error["param"] = param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param);
  error["code"] = code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code);
  nlohmann::ordered_json body;
  body["error"] = std::move(error);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FieldErrorBody(const absl::Status& status) {
  return ErrorBody(status, "", FieldOf(absl::Status(status.code(), ClientMessage(status))));
}

}  // namespace pagedllm::openai
