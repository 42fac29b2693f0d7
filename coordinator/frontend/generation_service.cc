#include "coordinator/frontend/generation_service.h"

#include <atomic>
#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/logging.h"
#include "coordinator/frontend/generate_stream.h"
#include "coordinator/frontend/grpc_status.h"

namespace pagedllm::coordinator {

namespace v1 = pagedllm::v1;

namespace {

// A call refused before it reached the engine (no key, draining, a bad field).
class RefusedCall final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RefusedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

// One Generate call. Its state is shared with the engine's listener and the work pool (which
// reach it through weak pointers); gRPC owns the reactor itself until OnDone. Responses are
// written one at a time from an outbox; Finish comes after the last write.
class GenerationService::GenerateCall final
    : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateCall(GenerationService* service, RequestSpec spec)
      : service_(service),
        key_(spec.key),
        state_(std::make_shared<State>(spec, service->tokenizer_, service->engine_)) {
    state_->reactor = this;
    state_->pool = service_->stream_pool_.get();
    state_->handle = service_->engine_->Submit(std::move(spec));
    // On the engine's courier thread, once per chunk: at most one pump waits in the pool per call.
    state_->handle->SetListener([weak = std::weak_ptr<State>(state_)] {
      std::shared_ptr<State> state = weak.lock();
      if (state == nullptr || state->pump_posted.exchange(true)) return;
      state->pool->Post([weak] {
        if (std::shared_ptr<State> posted = weak.lock()) posted->Pump();
      });
    });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->writing = false;
    state_->outbox.pop_front();
    if (!ok) {
      // The client is gone (or stopped reading): nothing more can be written.
      state_->outbox.clear();
      if (!state_->ended) {
        service_->engine_->Abort(key_);
        state_->End(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      }
    }
    state_->Advance();
  }

  void OnCancel() override {
    service_->engine_->Abort(key_);
    std::lock_guard<std::mutex> lock(state_->mutex);
    // Keep only a write in flight.
    while (state_->outbox.size() > (state_->writing ? 1u : 0u)) state_->outbox.pop_back();
    if (!state_->ended) {
      state_->End(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
    }
    state_->Advance();
  }

  void OnDone() override {
    state_->handle->SetListener(nullptr);
    std::string log_line;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->reactor = nullptr;
      log_line = state_->stream.LogLine();
    }
    PAGEDLLM_LOG(INFO) << log_line;
    service_->intake_->CallEnded();
    delete this;
  }

 private:
  struct State {
    State(const RequestSpec& spec, const tokenizer::Tokenizer* tokenizer, Engine* engine)
        : stream(spec, tokenizer, engine) {}

    // Turns what the engine pushed into responses (on the work pool).
    void Pump() {
      pump_posted = false;  // before taking: a chunk pushed from now on posts another pump
      std::lock_guard<std::mutex> lock(mutex);  // taken first: chunks are processed in order
      std::vector<GenerationChunk> chunks;
      if (ended || !handle->TryTake(&chunks)) return;
      GenerateStream::Output out = stream.Process(chunks);
      if (out.response.has_value()) outbox.push_back(*std::move(out.response));
      if (out.done) End(ToGrpcStatus(out.status));
      Advance();
    }
    void End(grpc::Status final_status) {  // requires mutex
      ended = true;
      status = std::move(final_status);
    }
    // Starts the next write, or finishes the call once everything is written.
    void Advance() {  // requires mutex
      if (reactor == nullptr || writing || finished) return;
      if (!outbox.empty()) {
        writing = true;
        reactor->StartWrite(&outbox.front());
      } else if (ended) {
        finished = true;
        reactor->Finish(status);
      }
    }

    WorkPool* pool = nullptr;
    std::atomic<bool> pump_posted{false};  // a Pump is queued in the pool
    std::mutex mutex;
    GenerateCall* reactor = nullptr;  // null once gRPC is done with the call
    std::shared_ptr<RequestHandle> handle;
    GenerateStream stream;
    std::deque<v1::GenerateResponse> outbox;  // the front is being written while `writing`
    bool writing = false;
    bool ended = false;     // nothing more is queued; `status` ends the call
    bool finished = false;  // Finish was called
    grpc::Status status;
  };

  GenerationService* const service_;
  const std::string key_;
  const std::shared_ptr<State> state_;
};

GenerationService::GenerationService(RequestIntake* intake, v1::ServerStats info,
                                     int num_stream_threads)
    : intake_(intake),
      engine_(intake->engine()),
      tokenizer_(intake->tokenizer()),
      limits_(intake->limits()),
      info_(std::move(info)),
      stream_pool_(std::make_unique<WorkPool>(num_stream_threads)) {}

GenerationService::~GenerationService() = default;

grpc::Status GenerationService::Authorize(const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  const absl::string_view value = it == metadata.end()
                                      ? absl::string_view()
                                      : absl::string_view(it->second.data(), it->second.size());
  return ToGrpcStatus(intake_->Authorize(value));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  if (grpc::Status allowed = Authorize(*context); !allowed.ok()) return new RefusedCall(allowed);
  absl::StatusOr<RequestSpec> spec = intake_->Accept(*request);
  if (!spec.ok()) return new RefusedCall(ToGrpcStatus(spec.status()));
  intake_->CallStarted();
  return new GenerateCall(this, *std::move(spec));
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  grpc::Status status = Authorize(*context);
  if (status.ok()) status = DoTokenize(*request, response);
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* context,
                                                        const v1::DetokenizeRequest* request,
                                                        v1::DetokenizeResponse* response) {
  grpc::Status status = Authorize(*context);
  if (status.ok()) status = DoDetokenize(*request, response);
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* GenerationService::GetStats(grpc::CallbackServerContext* context,
                                                      const v1::GetStatsRequest*,
                                                      v1::ServerStats* response) {
  grpc::Status status = Authorize(*context);
  if (status.ok()) FillStats(response);
  return FinishUnary(context, status);
}

grpc::Status GenerationService::DoTokenize(const v1::TokenizeRequest& request,
                                           v1::TokenizeResponse* response) const {
  if (tokenizer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "Tokenize: this server's model directory has no tokenizer.json");
  }
  if (limits_.max_text_bytes > 0 && request.text().size() > limits_.max_text_bytes) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "text has ", request.text().size(), " bytes: more than ", limits_.max_text_bytes,
        " cannot fit max_model_len ", limits_.max_model_len, " tokens")));
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      tokenizer_->Encode(request.text(), request.add_special_tokens());
  if (!ids.ok()) {
    return ToGrpcStatus(
        absl::Status(ids.status().code(), absl::StrCat("text: ", ids.status().message())));
  }
  response->mutable_ids()->Add(ids->begin(), ids->end());
  return grpc::Status::OK;
}

grpc::Status GenerationService::DoDetokenize(const v1::DetokenizeRequest& request,
                                             v1::DetokenizeResponse* response) const {
  if (tokenizer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "Detokenize: this server's model directory has no tokenizer.json");
  }
  const auto& ids = request.ids();
  absl::StatusOr<std::string> text =
      tokenizer_->Decode(absl::MakeConstSpan(ids.data(), static_cast<size_t>(ids.size())),
                         request.skip_special_tokens());
  if (!text.ok()) {
    return ToGrpcStatus(
        absl::Status(text.status().code(), absl::StrCat("ids: ", text.status().message())));
  }
  response->set_text(*std::move(text));
  return grpc::Status::OK;
}

void GenerationService::FillStats(v1::ServerStats* response) const {
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
  response->set_num_steps_ahead(stats.num_steps_ahead);
  response->set_device_busy_ns_total(stats.device_busy_ns_total);
  response->set_device_idle_ns_total(stats.device_idle_ns_total);
}

}  // namespace pagedllm::coordinator
