#include "coordinator/frontend/generation_service.h"

#include <chrono>
#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "common/constant_time.h"
#include "common/logging.h"
#include "coordinator/frontend/grpc_status.h"
#include "coordinator/frontend/text_stream.h"

namespace pagedllm::coordinator {

namespace v1 = pagedllm::v1;

namespace {

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kAbort:
      return v1::FINISH_REASON_ABORT;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// How often a waiting handler looks at whether its call was cancelled.
constexpr absl::Duration kCancelPollInterval = absl::Milliseconds(20);

}  // namespace

GenerationService::GenerationService(Engine* engine, ValidationLimits limits, v1::ServerStats info,
                                     const tokenizer::Tokenizer* tokenizer)
    : engine_(engine),
      tokenizer_(tokenizer),
      limits_(limits),
      info_(std::move(info)),
      seed_source_(std::random_device{}()) {}

std::string GenerationService::NewRequestKey() {
  uint64_t words[2];
  {
    std::lock_guard<std::mutex> lock(seed_mutex_);
    words[0] = (static_cast<uint64_t>(random_device_()) << 32) | random_device_();
    words[1] = (static_cast<uint64_t>(random_device_()) << 32) | random_device_();
  }
  return absl::StrCat(absl::Hex(words[0], absl::kZeroPad16), absl::Hex(words[1], absl::kZeroPad16));
}

grpc::Status GenerationService::Authorize(const grpc::ServerContext& context) const {
  if (api_keys_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this server needs an API key: send \"authorization: Bearer <key>\"");
  }
  const std::string value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  bool match = false;
  if (absl::StartsWith(value, kBearer)) {
    const std::string given = value.substr(kBearer.size());
    // Every key is compared in full, whatever matched before.
    for (const std::string& key : api_keys_) match = SameSecret(given, key) || match;
  }
  if (!match) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the API key is not valid");
  }
  return grpc::Status::OK;
}

uint64_t GenerationService::NextSeed() {
  std::lock_guard<std::mutex> lock(seed_mutex_);
  return seed_source_();
}

grpc::Status GenerationService::Generate(grpc::ServerContext* context,
                                         const v1::GenerateRequest* request,
                                         grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (grpc::Status allowed = Authorize(*context); !allowed.ok()) return allowed;
  ++active_calls_;
  struct Done {
    std::atomic<int>* count;
    ~Done() { --*count; }
  } done{&active_calls_};
  if (draining_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is draining before it shuts down; send the request elsewhere");
  }
  absl::StatusOr<RequestSpec> spec =
      ValidateGenerateRequest(*request, limits_, NextSeed(), tokenizer_);
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  // The engine knows the request by a key of this call's own: a client's request_id may be
  // anything (and repeat), and must never reach another call's request.
  const std::string key = NewRequestKey();
  if (spec->request_id.empty()) spec->request_id = absl::StrCat("req-", key);
  spec->key = key;
  const std::string request_id = spec->request_id;
  const bool client_logprobs = spec->sampling.num_top_logprobs >= 0;
  const bool with_cumulative = spec->wants_cumulative_logprob();
  const int num_choices = spec->n;
  // Per choice: its text, whether it is over, the logprob of what was sent.
  std::vector<std::optional<TextStream>> texts(num_choices);
  if (tokenizer_ != nullptr) {
    for (auto& text : texts) {
      text.emplace(*tokenizer_, spec->skip_special_tokens, spec->stop_strings,
                   spec->include_stop_str_in_output);
    }
  }
  std::vector<char> finished(num_choices, 0);
  std::vector<double> cumulative(num_choices, 0.0);
  int num_open = num_choices;
  const size_t num_prompt_tokens = spec->prompt_token_ids.size();
  const auto started = std::chrono::steady_clock::now();
  double first_token_ms = -1.0;
  size_t num_output_tokens = 0;
  std::vector<FinishReason> finish_of(num_choices, FinishReason::kNone);
  // One line per request when its call ends, whatever ended it.
  struct RequestLog {
    std::function<void()> write;
    ~RequestLog() { write(); }
  } request_log{[&] {
    std::string finishes;
    for (FinishReason reason : finish_of) {
      absl::StrAppend(&finishes, finishes.empty() ? "" : ",",
                      reason == FinishReason::kStop     ? "stop"
                      : reason == FinishReason::kLength ? "length"
                      : reason == FinishReason::kAbort  ? "abort"
                                                        : "none");
    }
    const double total_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    PAGEDLLM_LOG(INFO) << "request " << request_id << ": " << num_prompt_tokens << " prompt + "
                       << num_output_tokens << " output tokens, " << num_choices
                       << " choices, first token " << absl::StrFormat("%.1f", first_token_ms)
                       << " ms, total " << absl::StrFormat("%.1f", total_ms) << " ms, finish "
                       << finishes;
  }};
  std::shared_ptr<RequestHandle> handle = engine_->Submit(*std::move(spec));

  std::vector<GenerationChunk> chunks;
  bool request_done = false;
  while (num_open > 0 && !request_done) {
    if (context->IsCancelled()) {
      engine_->Abort(key);
      return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
    }
    if (!handle->WaitAndTake(kCancelPollInterval, &chunks)) continue;

    v1::GenerateResponse response;
    response.set_request_id(request_id);
    std::vector<v1::Choice*> choice_of(num_choices, nullptr);
    for (GenerationChunk& chunk : chunks) {
      if (!chunk.error.ok()) return ToGrpcStatus(chunk.error);
      request_done = request_done || chunk.request_done;
      const int index = chunk.choice_index;
      if (index < 0 || index >= num_choices || finished[index]) continue;
      if (choice_of[index] == nullptr) {
        choice_of[index] = response.add_choices();
        choice_of[index]->set_index(index);
      }
      v1::Choice* choice = choice_of[index];
      std::optional<TextStream>& text = texts[index];
      FinishReason finish = FinishReason::kNone;
      size_t num_tokens = chunk.token_ids.size();
      if (text.has_value()) {
        TextStream::Update update = text->Append(chunk.token_ids);
        choice->mutable_text()->append(update.text);
        num_tokens = update.num_tokens;
        if (update.stopped) finish = FinishReason::kStop;
      }
      if (num_tokens > 0 && first_token_ms < 0) {
        first_token_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                .count();
      }
      num_output_tokens += num_tokens;
      for (size_t i = 0; i < num_tokens; ++i) {
        choice->add_token_ids(chunk.token_ids[i]);
        if (i >= chunk.logprobs.size()) continue;
        cumulative[index] += chunk.logprobs[i].logprob;
        if (!client_logprobs) continue;
        v1::TokenLogprob* logprob = choice->add_logprobs();
        logprob->set_token_id(chunk.token_ids[i]);
        logprob->set_logprob(chunk.logprobs[i].logprob);
        for (const auto& [token_id, value] : chunk.logprobs[i].top) {
          v1::TopLogprob* top = logprob->add_top();
          top->set_token_id(token_id);
          top->set_logprob(value);
        }
      }
      if (finish == FinishReason::kStop && chunk.finish_reason == FinishReason::kNone) {
        // A stop string matched: the engine is still generating this choice; stop it and free
        // its blocks.
        engine_->FinishChoice(key, index);
      } else if (finish == FinishReason::kNone && chunk.finish_reason != FinishReason::kNone) {
        finish = chunk.finish_reason;
        if (text.has_value()) {
          TextStream::Update rest = text->Finish();
          choice->mutable_text()->append(rest.text);
          if (rest.stopped) finish = FinishReason::kStop;
        }
      }
      if (finish == FinishReason::kNone) continue;
      finish_of[index] = finish;
      choice->set_finish_reason(ToProto(finish));
      if (with_cumulative) choice->set_cumulative_logprob(cumulative[index]);
      finished[index] = 1;
      --num_open;
    }
    if (response.choices_size() == 0) continue;
    if (!writer->Write(response)) {
      engine_->Abort(key);
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading");
    }
  }
  return grpc::Status::OK;
}

grpc::Status GenerationService::Tokenize(grpc::ServerContext* context,
                                         const v1::TokenizeRequest* request,
                                         v1::TokenizeResponse* response) {
  if (grpc::Status allowed = Authorize(*context); !allowed.ok()) return allowed;
  if (tokenizer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "Tokenize: this server's model directory has no tokenizer.json");
  }
  if (limits_.max_text_bytes > 0 && request->text().size() > limits_.max_text_bytes) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "text has ", request->text().size(), " bytes: more than ", limits_.max_text_bytes,
        " cannot fit max_model_len ", limits_.max_model_len, " tokens")));
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      tokenizer_->Encode(request->text(), request->add_special_tokens());
  if (!ids.ok()) {
    return ToGrpcStatus(
        absl::Status(ids.status().code(), absl::StrCat("text: ", ids.status().message())));
  }
  response->mutable_ids()->Add(ids->begin(), ids->end());
  return grpc::Status::OK;
}

grpc::Status GenerationService::Detokenize(grpc::ServerContext* context,
                                           const v1::DetokenizeRequest* request,
                                           v1::DetokenizeResponse* response) {
  if (grpc::Status allowed = Authorize(*context); !allowed.ok()) return allowed;
  if (tokenizer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "Detokenize: this server's model directory has no tokenizer.json");
  }
  const auto& ids = request->ids();
  absl::StatusOr<std::string> text =
      tokenizer_->Decode(absl::MakeConstSpan(ids.data(), static_cast<size_t>(ids.size())),
                         request->skip_special_tokens());
  if (!text.ok()) {
    return ToGrpcStatus(
        absl::Status(text.status().code(), absl::StrCat("ids: ", text.status().message())));
  }
  response->set_text(*std::move(text));
  return grpc::Status::OK;
}

grpc::Status GenerationService::GetStats(grpc::ServerContext* context, const v1::GetStatsRequest*,
                                         v1::ServerStats* response) {
  if (grpc::Status allowed = Authorize(*context); !allowed.ok()) return allowed;
  const EngineStats stats = engine_->stats();
  *response = info_;
  response->set_num_total_blocks(stats.num_total_blocks);
  response->set_num_free_blocks(stats.num_free_blocks);
  response->set_num_waiting(stats.num_waiting);
  response->set_num_running(stats.num_running);
  response->set_num_steps(stats.steps);
  response->set_num_computed_tokens(stats.tokens_computed);
  response->set_num_generated_tokens(stats.tokens_generated);
  response->set_num_preemptions(stats.counters.num_preemptions);
  response->set_num_prefix_cache_queries(stats.counters.num_prefix_cache_queries);
  response->set_num_prefix_cache_hit_tokens(stats.counters.num_prefix_cache_hit_tokens);
  response->set_num_swapped_out(stats.counters.num_swapped_out);
  response->set_num_swapped_in(stats.counters.num_swapped_in);
  response->set_num_free_swap_blocks(stats.num_free_host_blocks);
  response->set_num_swapped(stats.num_swapped);
  response->set_num_cached_free_blocks(stats.num_cached_free_blocks);
  response->set_kv_usage_samples(stats.counters.num_kv_samples);
  response->set_kv_slots_allocated_sum(stats.counters.kv_slots_allocated_sum);
  response->set_kv_slots_filled_sum(stats.counters.kv_slots_filled_sum);
  response->set_num_decode_steps(stats.num_decode_steps);
  response->set_decode_step_ns_total(stats.decode_step_ns_total);
  response->set_decode_forward_ns_total(stats.decode_forward_ns_total);
  response->set_num_prefill_steps(stats.num_prefill_steps);
  response->set_prefill_step_ns_total(stats.prefill_step_ns_total);
  response->set_prefill_forward_ns_total(stats.prefill_forward_ns_total);
  response->set_num_worker_restarts(stats.num_reconfigurations);
  return grpc::Status::OK;
}

}  // namespace pagedllm::coordinator
