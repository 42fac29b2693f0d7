// OpenAiApi: the routes of the coordinator's HTTP port.
//   POST /v1/completions, POST /v1/chat/completions   generation (OpenAI's API, see README)
//   GET  /v1/models, GET /v1/models/{id}              the served model
//   GET  /health                                      200 while serving, else 503
//   GET  /metrics                                     Prometheus text
//   GET  /version
// /v1/ routes need the API key when the server has keys (as vLLM: health and metrics do not).
// Errors are OpenAI's JSON shape (openai_error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/frontend/request_intake.h"
#include "coordinator/http/http_server.h"
#include "coordinator/openai/openai_request.h"

namespace pagedllm::openai {

struct OpenAiApiOptions {
  std::string served_model;  // the model's id in requests and responses
  int max_model_len = 0;
  // True while the workers serve (health); null: always.
  std::function<bool()> serving;
  // The Prometheus text of /metrics; null: /metrics is 404.
  std::function<std::string()> metrics;
  // Renders a chat request's messages (with its tools and template arguments) into the prompt
  // text; null: the model has no chat template and chat requests are refused, saying so.
  std::function<absl::StatusOr<std::string>(const OpenAiRequest&)> render_chat;
  std::string version;  // /version
};

class OpenAiApi {
 public:
  // `intake` outlives the API.
  OpenAiApi(coordinator::RequestIntake* intake, OpenAiApiOptions options);

  // The HttpHandler: runs on the connection's strand.
  void Handle(http::HttpRequest request, std::shared_ptr<http::HttpExchange> exchange);

 private:
  void Generate(Endpoint endpoint, const http::HttpRequest& request,
                const std::shared_ptr<http::HttpExchange>& exchange);
  // Chat: the rendered template, encoded without adding special tokens again, as the prompt.
  absl::Status RenderChatPrompt(OpenAiRequest* request) const;
  void Models(const http::HttpRequest& request,
              const std::shared_ptr<http::HttpExchange>& exchange);
  bool Serving() const;

  coordinator::RequestIntake* const intake_;
  const OpenAiApiOptions options_;
  const int64_t created_;
};

}  // namespace pagedllm::openai
