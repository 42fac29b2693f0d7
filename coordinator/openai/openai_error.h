// Errors at the HTTP edge, in OpenAI's shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "top_p", "code": null}}
// with the status that the absl code maps to (400 a bad field, 401 a bad key, 404 an unknown
// model or path, 429 the queue is full, 503 unavailable or draining, 500 anything else).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace pagedllm::openai {

int HttpStatusOf(absl::StatusCode code);

// The message as an HTTP client should read it: the shared gRPC validation names proto fields
// ("sampling.top_p", "prompt.token_ids"); the JSON fields are "top_p" and "prompt".
std::string ClientMessage(const absl::Status& status);

// The error body for `status` (not OK). `code`: OpenAI's error code string, `param`: the
// request field at fault; "" for null.
std::string ErrorBody(const absl::Status& status, const std::string& code = "",
                      const std::string& param = "");
// The same for an error about the request's fields: the param is the field the message names.
std::string FieldErrorBody(const absl::Status& status);

}  // namespace pagedllm::openai
