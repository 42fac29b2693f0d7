#include "coordinator/frontend/generate_stream.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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

}  // namespace

GenerateStream::GenerateStream(const RequestSpec& spec, const tokenizer::Tokenizer* tokenizer,
                               Engine* engine)
    : engine_(engine),
      request_id_(spec.request_id),
      key_(spec.key),
      client_logprobs_(spec.sampling.num_top_logprobs >= 0),
      with_cumulative_(spec.wants_cumulative_logprob()),
      num_choices_(spec.n),
      num_prompt_tokens_(spec.prompt_token_ids.size()),
      texts_(spec.n),
      finished_(spec.n, 0),
      cumulative_(spec.n, 0.0),
      finish_of_(spec.n, FinishReason::kNone),
      num_open_(spec.n),
      started_(std::chrono::steady_clock::now()) {
  if (tokenizer == nullptr) return;
  for (auto& text : texts_) {
    text.emplace(*tokenizer, spec.skip_special_tokens, spec.stop_strings,
                 spec.include_stop_str_in_output);
  }
}

GenerateStream::Output GenerateStream::Process(std::vector<GenerationChunk>& chunks) {
  Output out;
  v1::GenerateResponse response;
  response.set_request_id(request_id_);
  std::vector<v1::Choice*> choice_of(num_choices_, nullptr);
  for (GenerationChunk& chunk : chunks) {
    if (!chunk.error.ok()) {
      out.done = true;
      out.status = chunk.error;
      return out;  // what came before the error in this batch is not sent
    }
    request_done_ = request_done_ || chunk.request_done;
    const int index = chunk.choice_index;
    if (index < 0 || index >= num_choices_ || finished_[index]) continue;
    if (choice_of[index] == nullptr) {
      choice_of[index] = response.add_choices();
      choice_of[index]->set_index(index);
    }
    v1::Choice* choice = choice_of[index];
    std::optional<TextStream>& text = texts_[index];
    FinishReason finish = FinishReason::kNone;
    size_t num_tokens = chunk.token_ids.size();
    if (text.has_value()) {
      TextStream::Update update = text->Append(chunk.token_ids);
      choice->mutable_text()->append(update.text);
      num_tokens = update.num_tokens;
      if (update.stopped) finish = FinishReason::kStop;
    }
    if (num_tokens > 0 && first_token_ms_ < 0) {
      first_token_ms_ =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
              .count();
    }
    num_output_tokens_ += num_tokens;
    for (size_t i = 0; i < num_tokens; ++i) {
      choice->add_token_ids(chunk.token_ids[i]);
      if (i >= chunk.logprobs.size()) continue;
      cumulative_[index] += chunk.logprobs[i].logprob;
      if (!client_logprobs_) continue;
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
      engine_->FinishChoice(key_, index);
    } else if (finish == FinishReason::kNone && chunk.finish_reason != FinishReason::kNone) {
      finish = chunk.finish_reason;
      if (text.has_value()) {
        TextStream::Update rest = text->Finish();
        choice->mutable_text()->append(rest.text);
        if (rest.stopped) finish = FinishReason::kStop;
      }
    }
    if (finish == FinishReason::kNone) continue;
    finish_of_[index] = finish;
    choice->set_finish_reason(ToProto(finish));
    if (with_cumulative_) choice->set_cumulative_logprob(cumulative_[index]);
    finished_[index] = 1;
    --num_open_;
  }
  if (response.choices_size() > 0) out.response = std::move(response);
  out.done = num_open_ == 0 || request_done_;
  return out;
}

std::string GenerateStream::LogLine() const {
  std::string finishes;
  for (FinishReason reason : finish_of_) {
    absl::StrAppend(&finishes, finishes.empty() ? "" : ",",
                    reason == FinishReason::kStop     ? "stop"
                    : reason == FinishReason::kLength ? "length"
                    : reason == FinishReason::kAbort  ? "abort"
                                                      : "none");
  }
  const double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
          .count();
  return absl::StrCat("request ", request_id_, ": ", num_prompt_tokens_, " prompt + ",
                      num_output_tokens_, " output tokens, ", num_choices_,
                      " choices, first token ", absl::StrFormat("%.1f", first_token_ms_),
                      " ms, total ", absl::StrFormat("%.1f", total_ms), " ms, finish ", finishes);
}

}  // namespace pagedllm::coordinator
