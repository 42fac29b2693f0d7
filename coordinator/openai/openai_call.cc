#include "coordinator/openai/openai_call.h"

#include <atomic>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/logging.h"
#include "coordinator/frontend/generate_stream.h"
#include "coordinator/openai/openai_error.h"
#include "coordinator/openai/openai_format.h"

namespace pagedllm::openai {

namespace v1 = pagedllm::v1;
using coordinator::GenerateStream;
using coordinator::GenerationChunk;
using coordinator::RequestHandle;
using coordinator::RequestSpec;

namespace {

constexpr const char* kEventStream = "text/event-stream; charset=utf-8";
constexpr const char* kJson = "application/json";

class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(const CallContext& context, OpenAiRequest request, std::vector<RequestSpec> specs,
       std::shared_ptr<http::HttpExchange> exchange)
      : intake_(context.intake),
        tokenizer_(context.intake->tokenizer()),
        model_(context.served_model),
        request_(std::move(request)),
        chat_(request_.endpoint == Endpoint::kChatCompletions),
        exchange_(std::move(exchange)),
        created_(std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()) {
    id_ = absl::StrCat(chat_ ? "chatcmpl-" : "cmpl-", specs.front().key);
    for (RequestSpec& spec : specs) {
      auto prompt = std::make_unique<Prompt>(spec, tokenizer_, intake_->engine());
      prompt->spec = std::move(spec);
      prompts_.push_back(std::move(prompt));
    }
    choices_.resize(prompts_.size() * static_cast<size_t>(request_.n));
  }

  // On the strand.
  void Start() {
    self_ = shared_from_this();
    intake_->CallStarted();
    const std::weak_ptr<Call> weak = weak_from_this();
    exchange_->SetOnGone([weak] {
      if (std::shared_ptr<Call> call = weak.lock()) call->OnClientGone();
    });
    for (size_t p = 0; p < prompts_.size(); ++p) {
      Prompt& prompt = *prompts_[p];
      if (request_.echo) prompt.echo_text = EchoText(p);
      prompt.handle = intake_->engine()->Submit(prompt.spec);
      std::shared_ptr<http::HttpExchange> exchange = exchange_;
      // On the engine's thread, once per chunk: at most one pump per prompt waits on the strand.
      // (It may still run once after the call is gone: it holds the flag, not the prompt.)
      prompt.handle->SetListener([weak, exchange, posted = prompt.pump_posted, p] {
        if (posted->exchange(true)) return;
        exchange->Post([weak, p] {
          if (std::shared_ptr<Call> call = weak.lock()) call->Pump(p);
        });
      });
    }
  }

 private:
  struct Prompt {
    Prompt(const RequestSpec& spec_in, const tokenizer::Tokenizer* tokenizer,
           coordinator::Engine* engine)
        : stream(spec_in, tokenizer, engine) {}
    RequestSpec spec;
    GenerateStream stream;
    std::shared_ptr<RequestHandle> handle;
    std::shared_ptr<std::atomic<bool>> pump_posted = std::make_shared<std::atomic<bool>>(false);
    bool done = false;
    std::string echo_text;
  };
  struct ChoiceState {
    std::string text;  // the whole text (not streaming)
    uint64_t num_tokens = 0;
    Json logprobs;  // null until the first token with logprobs
    size_t text_offset = 0;
    Json finish_reason;    // null while running
    bool started = false;  // its first text (and, chat, the role) went out
  };

  // The prompt as the client gave it: its text, or its token ids decoded.
  std::string EchoText(size_t p) const {
    const v1::GenerateRequest& given = request_.prompts[p];
    if (given.has_text()) return given.text();
    if (tokenizer_ == nullptr) return "";
    absl::StatusOr<std::string> text =
        tokenizer_->Decode(absl::MakeConstSpan(prompts_[p]->spec.prompt_token_ids),
                           /*skip_special_tokens=*/false);
    return text.ok() ? *std::move(text) : "";
  }

  void Pump(size_t p) {
    Prompt& prompt = *prompts_[p];
    *prompt.pump_posted = false;  // before taking: a chunk pushed from now on posts another pump
    if (finished_ || prompt.done) return;
    std::vector<GenerationChunk> chunks;
    if (!prompt.handle->TryTake(&chunks)) return;
    GenerateStream::Output out = prompt.stream.Process(chunks);
    if (out.response.has_value()) Emit(p, *out.response);
    if (!out.done) return;
    prompt.done = true;
    prompt.handle->SetListener(nullptr);
    PAGEDLLM_LOG(INFO) << prompt.stream.LogLine();
    if (!out.status.ok()) return Fail(out.status);
    if (++num_done_ == prompts_.size()) Complete();
  }

  void Emit(size_t p, const v1::GenerateResponse& response) {
    Json event_choices = Json::array();
    for (const v1::Choice& choice : response.choices()) {
      const size_t index = p * static_cast<size_t>(request_.n) + choice.index();
      if (index >= choices_.size()) continue;
      ChoiceState& state = choices_[index];
      std::string text = choice.text();
      if (!state.started && request_.echo) text = prompts_[p]->echo_text + text;
      state.num_tokens += static_cast<uint64_t>(choice.token_ids_size());
      Json logprobs;  // this chunk's
      if (request_.top_logprobs >= 0) {
        if (chat_) {
          AppendChatLogprobs(choice, tokenizer_, &logprobs);
        } else {
          AppendCompletionLogprobs(choice, tokenizer_, &state.text_offset, &logprobs);
        }
      }
      const Json finish = FinishReasonJson(choice.finish_reason());
      if (!finish.is_null()) state.finish_reason = finish;
      if (!request_.stream) {
        state.text += text;
        MergeLogprobs(logprobs, &state.logprobs);
        state.started = true;
        continue;
      }
      if (text.empty() && logprobs.is_null() && finish.is_null() && state.started) continue;
      event_choices.push_back(StreamChoice(index, text, std::move(logprobs), finish));
      state.started = true;
    }
    if (!request_.stream || event_choices.empty()) return;
    StartStreaming();
    exchange_->Write(SseEvent(ChunkObject(std::move(event_choices))));
  }

  static void MergeLogprobs(Json chunk, Json* total) {
    if (chunk.is_null()) return;
    if (total->is_null()) {
      *total = std::move(chunk);
      return;
    }
    for (auto& [key, values] : chunk.items()) {
      for (auto& value : values) (*total)[key].push_back(std::move(value));
    }
  }

  Json StreamChoice(size_t index, const std::string& text, Json logprobs, const Json& finish) {
    Json choice = Json::object();
    choice["index"] = index;
    if (chat_) {
      Json delta = Json::object();
      if (!choices_[index].started) delta["role"] = "assistant";
      if (!text.empty() || !choices_[index].started) delta["content"] = text;
      choice["delta"] = std::move(delta);
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = finish;
    if (!chat_) choice["stop_reason"] = Json();
    return choice;
  }

  // What every response object starts with: {id, object, created, model, choices}.
  Json ResponseObject(const char* object, Json choices) const {
    Json out = Json::object();
    out["id"] = id_;
    out["object"] = object;
    out["created"] = created_;
    out["model"] = model_;
    out["choices"] = std::move(choices);
    return out;
  }

  Json ChunkObject(Json choices) const {
    Json chunk =
        ResponseObject(chat_ ? "chat.completion.chunk" : "text_completion", std::move(choices));
    if (request_.include_usage) chunk["usage"] = Json();
    return chunk;
  }

  // The headers go out with the first output (or error), so that an error before any output
  // still gets its own HTTP status. Chat streams open every choice with the assistant's role.
  void StartStreaming() {
    if (streaming_) return;
    streaming_ = true;
    exchange_->StartStream(200, kEventStream, {{"Cache-Control", "no-cache"}});
  }

  uint64_t PromptTokens() const {
    uint64_t total = 0;
    for (const auto& prompt : prompts_) total += prompt->spec.prompt_token_ids.size();
    return total;
  }
  uint64_t CompletionTokens() const {
    uint64_t total = 0;
    for (const ChoiceState& choice : choices_) total += choice.num_tokens;
    return total;
  }

  void Complete() {
    if (request_.stream) {
      StartStreaming();
      if (request_.include_usage) {
        Json chunk = ChunkObject(Json::array());
        chunk["usage"] = UsageJson(PromptTokens(), CompletionTokens());
        exchange_->Write(SseEvent(chunk));
      }
      exchange_->Write(kSseDone);
      exchange_->EndStream();
    } else {
      Json choices = Json::array();
      for (size_t i = 0; i < choices_.size(); ++i) {
        ChoiceState& state = choices_[i];
        Json choice = Json::object();
        choice["index"] = i;
        if (chat_) {
          Json message = Json::object();
          message["role"] = "assistant";
          message["content"] = std::move(state.text);
          choice["message"] = std::move(message);
        } else {
          choice["text"] = std::move(state.text);
        }
        choice["logprobs"] = std::move(state.logprobs);
        choice["finish_reason"] = state.finish_reason;
        if (!chat_) choice["stop_reason"] = Json();
        choices.push_back(std::move(choice));
      }
      Json body = ResponseObject(chat_ ? "chat.completion" : "text_completion", std::move(choices));
      body["usage"] = UsageJson(PromptTokens(), CompletionTokens());
      exchange_->Respond(200, kJson, Dump(body));
    }
    End();
  }

  void Fail(const absl::Status& status) {
    AbortOpenPrompts();
    if (streaming_) {
      // Headers are gone: the error is the stream's last event (as vLLM sends it).
      exchange_->Write(absl::StrCat("data: ", ErrorBody(status), "\n\n"));
      exchange_->Write(kSseDone);
      exchange_->EndStream();
    } else {
      exchange_->Respond(HttpStatusOf(status.code()), kJson, ErrorBody(status));
    }
    End();
  }

  void OnClientGone() {
    if (finished_) return;
    AbortOpenPrompts();
    PAGEDLLM_LOG(INFO) << "request " << id_ << ": the HTTP client went away; aborted";
    End();
  }

  void AbortOpenPrompts() {
    for (auto& prompt : prompts_) {
      if (prompt->done) continue;
      prompt->done = true;
      prompt->handle->SetListener(nullptr);
      intake_->engine()->Abort(prompt->spec.key);
    }
  }

  void End() {
    if (finished_) return;
    finished_ = true;
    intake_->CallEnded();
    self_.reset();  // the last posted pump (if any) holds the call until it returns
  }

  coordinator::RequestIntake* const intake_;
  const tokenizer::Tokenizer* const tokenizer_;
  const std::string model_;
  const OpenAiRequest request_;
  const bool chat_;
  const std::shared_ptr<http::HttpExchange> exchange_;
  const int64_t created_;
  std::string id_;
  std::vector<std::unique_ptr<Prompt>> prompts_;
  std::vector<ChoiceState> choices_;
  size_t num_done_ = 0;
  bool streaming_ = false;
  bool finished_ = false;
  std::shared_ptr<Call> self_;  // alive until the response is complete or the client gone
};

}  // namespace

void StartOpenAiCall(const CallContext& context, OpenAiRequest request,
                     std::vector<RequestSpec> specs, std::shared_ptr<http::HttpExchange> exchange) {
  auto call =
      std::make_shared<Call>(context, std::move(request), std::move(specs), std::move(exchange));
  call->Start();
}

}  // namespace pagedllm::openai
