#include "coordinator/openai/openai_api.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/openai/openai_call.h"
#include "coordinator/openai/openai_error.h"
#include "coordinator/openai/openai_format.h"

namespace pagedllm::openai {

namespace {

constexpr const char* kJson = "application/json";

void RespondError(http::HttpExchange& exchange, const absl::Status& status,
                  const std::string& code = "", const std::string& param = "") {
  exchange.Respond(HttpStatusOf(status.code()), kJson, ErrorBody(status, code, param));
}

// An error about the request's fields: its param names the field.
void RespondFieldError(http::HttpExchange& exchange, const absl::Status& status) {
  exchange.Respond(HttpStatusOf(status.code()), kJson, FieldErrorBody(status));
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OpenAiApi::OpenAiApi(coordinator::RequestIntake* intake, OpenAiApiOptions options)
    : intake_(intake), options_(std::move(options)), created_(NowSeconds()) {}

bool OpenAiApi::Serving() const {
  return !intake_->draining() && (!options_.serving || options_.serving());
}

void OpenAiApi::Handle(http::HttpRequest request, std::shared_ptr<http::HttpExchange> exchange) {
  const std::string& path = request.path;
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  auto wrong_method = [&](const char* allowed) {
    exchange->Respond(405, kJson,
                      ErrorBody(absl::InvalidArgumentError(absl::StrCat(
                          request.method, " ", path, ": method not allowed (", allowed, ")"))),
                      {{"Allow", allowed}});
  };
  if (path == "/health") {
    if (!get) return wrong_method("GET");
    if (Serving()) return exchange->Respond(200, kJson, "{}");
    return RespondError(
        *exchange,
        absl::UnavailableError(intake_->draining() ? "the server is draining before it shuts down"
                                                   : "the workers are unavailable (restarting)"));
  }
  if (path == "/metrics" && options_.metrics) {
    if (!get) return wrong_method("GET");
    return exchange->Respond(200, "text/plain; version=0.0.4; charset=utf-8", options_.metrics());
  }
  if (path == "/version") {
    if (!get) return wrong_method("GET");
    Json body = Json::object();
    body["version"] = options_.version;
    return exchange->Respond(200, kJson, Dump(body));
  }
  if (absl::StartsWith(path, "/v1/")) {
    if (absl::Status allowed = intake_->Authorize(request.Header("authorization")); !allowed.ok()) {
      return RespondError(*exchange, allowed, "invalid_api_key");
    }
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (!post) return wrong_method("POST");
      return Generate(
          path == "/v1/completions" ? Endpoint::kCompletions : Endpoint::kChatCompletions, request,
          exchange);
    }
    if (path == "/v1/models" || absl::StartsWith(path, "/v1/models/")) {
      if (!get) return wrong_method("GET");
      return Models(request, exchange);
    }
  }
  RespondError(*exchange,
               absl::NotFoundError(absl::StrCat("no route ", request.method, " ", path)));
}

void OpenAiApi::Models(const http::HttpRequest& request,
                       const std::shared_ptr<http::HttpExchange>& exchange) {
  Json model = Json::object();
  model["id"] = options_.served_model;
  model["object"] = "model";
  model["created"] = created_;
  model["owned_by"] = "pagedllm";
  model["root"] = options_.served_model;
  model["parent"] = Json();
  model["max_model_len"] = options_.max_model_len;
  if (request.path == "/v1/models") {
    Json list = Json::object();
    list["object"] = "list";
    list["data"] = Json::array({model});
    return exchange->Respond(200, kJson, Dump(list));
  }
  const std::string id = request.path.substr(std::string("/v1/models/").size());
  if (id != options_.served_model) {
    return RespondError(*exchange,
                        absl::NotFoundError(absl::StrCat("The model `", id, "` does not exist.")),
                        "model_not_found");
  }
  exchange->Respond(200, kJson, Dump(model));
}

absl::Status OpenAiApi::RenderChatPrompt(OpenAiRequest* request) const {
  if (!options_.render_chat) {
    return absl::InvalidArgumentError(
        "messages: this model has no chat template (tokenizer_config.json chat_template or "
        "chat_template.jinja); start the server with --chat_template FILE, or use "
        "/v1/completions");
  }
  const tokenizer::Tokenizer* tokenizer = intake_->tokenizer();
  if (tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        "messages: chat needs a tokenizer, and this server's model directory has no "
        "tokenizer.json");
  }
  absl::StatusOr<std::string> text = options_.render_chat(*request);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages: the chat template failed: ", text.status().message()));
  }
  const size_t max_bytes = intake_->limits().max_text_bytes;
  if (max_bytes > 0 && text->size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages render to ", text->size(), " bytes: more than ", max_bytes,
                     " cannot fit max_model_len ", options_.max_model_len, " tokens"));
  }
  // The template wrote the special tokens (BOS, ...) itself: none are added again.
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(*text, /*add_special_tokens=*/false);
  if (!ids.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages: the rendered prompt: ", ids.status().message()));
  }
  if (ids->empty()) return absl::InvalidArgumentError("messages render to no tokens");
  pagedllm::v1::GenerateRequest& prompt = request->prompts.front();
  prompt.mutable_token_ids()->mutable_ids()->Assign(ids->begin(), ids->end());
  // Chat has no fixed default length: what fits the context, as OpenAI's API and vLLM.
  if (!prompt.sampling().has_max_tokens()) {
    const int64_t room =
        static_cast<int64_t>(options_.max_model_len) - static_cast<int64_t>(ids->size());
    if (room < 1) {
      return absl::InvalidArgumentError(absl::StrCat("messages render to ", ids->size(),
                                                     " tokens; max_model_len is ",
                                                     options_.max_model_len));
    }
    prompt.mutable_sampling()->set_max_tokens(static_cast<uint32_t>(room));
  }
  return absl::OkStatus();
}

void OpenAiApi::Generate(Endpoint endpoint, const http::HttpRequest& request,
                         const std::shared_ptr<http::HttpExchange>& exchange) {
  const nlohmann::json body =
      nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return RespondError(*exchange, absl::InvalidArgumentError("the body is not valid JSON"));
  }
  absl::StatusOr<OpenAiRequest> parsed = ParseOpenAiRequest(endpoint, body);
  if (!parsed.ok()) return RespondFieldError(*exchange, parsed.status());
  if (!parsed->model.empty() && parsed->model != options_.served_model) {
    return RespondError(*exchange,
                        absl::NotFoundError(absl::StrCat("The model `", parsed->model,
                                                         "` does not exist; this server serves `",
                                                         options_.served_model, "`")),
                        "model_not_found", "model");
  }
  if (endpoint == Endpoint::kChatCompletions) {
    if (absl::Status rendered = RenderChatPrompt(&*parsed); !rendered.ok()) {
      return RespondFieldError(*exchange, rendered);
    }
  }
  std::vector<coordinator::RequestSpec> specs;
  specs.reserve(parsed->prompts.size());
  for (size_t i = 0; i < parsed->prompts.size(); ++i) {
    absl::StatusOr<coordinator::RequestSpec> spec = intake_->Accept(parsed->prompts[i]);
    if (!spec.ok()) {
      absl::Status status = spec.status();
      if (parsed->prompts.size() > 1 && absl::StrContains(status.message(), "prompt")) {
        status = absl::Status(status.code(), absl::StrCat("prompt[", i, "]: ", status.message()));
      }
      return RespondFieldError(*exchange, status);
    }
    specs.push_back(*std::move(spec));
  }
  CallContext context;
  context.intake = intake_;
  context.served_model = options_.served_model;
  StartOpenAiCall(context, *std::move(parsed), std::move(specs), exchange);
}

}  // namespace pagedllm::openai
