#include "tools/batch/batch_file.h"

#include "absl/strings/str_cat.h"

namespace pagedllm::batch {

using json = nlohmann::ordered_json;

namespace {

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

json CustomIdJson(const std::string& custom_id) {
  return custom_id.empty() ? json() : json(custom_id);
}

}  // namespace

absl::StatusOr<BatchRequest> ParseBatchLine(const std::string& line, int line_number,
                                            std::string* custom_id) {
  const auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", what));
  };
  const json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return invalid("not valid JSON");
  if (!parsed.is_object()) return invalid("not a JSON object");
  if (auto id = parsed.find("custom_id"); id != parsed.end() && id->is_string()) {
    *custom_id = id->get<std::string>();
  }
  BatchRequest request;
  request.custom_id = *custom_id;
  auto method = parsed.find("method");
  if (method != parsed.end() && !(method->is_string() && method->get<std::string>() == "POST")) {
    return invalid("method must be \"POST\"");
  }
  auto url = parsed.find("url");
  if (url == parsed.end() || !url->is_string()) return invalid("url must be a string");
  request.url = url->get<std::string>();
  if (request.url != "/v1/completions" && request.url != "/v1/chat/completions") {
    return invalid(absl::StrCat("url \"", request.url,
                                "\" is not served: /v1/completions or /v1/chat/completions"));
  }
  auto body = parsed.find("body");
  if (body == parsed.end() || !body->is_object()) return invalid("body must be an object");
  if (auto stream = body->find("stream");
      stream != body->end() && stream->is_boolean() && stream->get<bool>()) {
    return invalid("body.stream must be false in a batch");
  }
  request.body = Dump(*body);
  return request;
}

std::string ResponseLine(const std::string& custom_id, int line_number, int status_code,
                         const std::string& response_body) {
  json body = json::parse(response_body, nullptr, false);
  if (body.is_discarded()) body = json(response_body);
  json response = json::object();
  response["status_code"] = status_code;
  response["request_id"] = body.is_object() && body.contains("id") ? body["id"] : json();
  response["body"] = std::move(body);
  json out = json::object();
  out["id"] = absl::StrCat("batch_req_", line_number);
  out["custom_id"] = CustomIdJson(custom_id);
  out["response"] = std::move(response);
  out["error"] = json();
  return Dump(out);
}

std::string ErrorLine(const std::string& custom_id, int line_number, const std::string& code,
                      const std::string& message) {
  json out = json::object();
  out["id"] = absl::StrCat("batch_req_", line_number);
  out["custom_id"] = CustomIdJson(custom_id);
  out["response"] = json();
  out["error"] = {{"code", code}, {"message", message}};
  return Dump(out);
}

}  // namespace pagedllm::batch
