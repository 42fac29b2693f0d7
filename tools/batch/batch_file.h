// The OpenAI batch file format, as pagedllm-batch reads and writes it (OpenAI's Batch API and
// vLLM's run_batch use the same lines):
//   input  {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
//   output {"id": "batch_req_...", "custom_id": "r1",
//           "response": {"status_code": 200, "request_id": "...", "body": {...}}, "error": null}
// A line that is not a request (bad JSON, no body, an endpoint not served) gets an output line
// with "response": null and "error": {"code", "message"} naming the line and what is wrong.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagedllm::batch {

struct BatchRequest {
  std::string custom_id;
  std::string url;   // "/v1/completions" or "/v1/chat/completions"
  std::string body;  // the request's JSON text
};

// Reads input line `line_number` (1-based, for messages). INVALID_ARGUMENT naming the line and
// the field otherwise; `custom_id` is filled in when the line has one, even on error.
absl::StatusOr<BatchRequest> ParseBatchLine(const std::string& line, int line_number,
                                            std::string* custom_id);

// The output line of a request the server answered (any HTTP status).
std::string ResponseLine(const std::string& custom_id, int line_number, int status_code,
                         const std::string& response_body);
// The output line of a line that could not be sent, or whose request failed in transport.
std::string ErrorLine(const std::string& custom_id, int line_number, const std::string& code,
                      const std::string& message);

}  // namespace pagedllm::batch
