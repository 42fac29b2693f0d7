#include "coordinator/openai/openai_format.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pagedllm::openai {

namespace v1 = pagedllm::v1;

namespace {

// JSON has no infinities: a token the model gives no chance shows -9999, as vLLM does.
double FiniteLogprob(float logprob) { return std::isfinite(logprob) ? logprob : -9999.0; }

Json Bytes(const std::string& text) {
  Json bytes = Json::array();
  for (const unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

Json FinishReasonJson(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_ABORT:
      return "abort";
    default:
      return Json();
  }
}

std::string TokenText(const tokenizer::Tokenizer* tokenizer, int32_t token_id) {
  if (tokenizer == nullptr) return "";
  absl::StatusOr<std::string> text = tokenizer->Decode({token_id}, /*skip_special_tokens=*/false);
  return text.ok() ? *std::move(text) : "";
}

void AppendCompletionLogprobs(const v1::Choice& choice, const tokenizer::Tokenizer* tokenizer,
                              size_t* text_offset, Json* out) {
  if (out->is_null()) {
    *out = Json::object();
    (*out)["tokens"] = Json::array();
    (*out)["token_logprobs"] = Json::array();
    (*out)["top_logprobs"] = Json::array();
    (*out)["text_offset"] = Json::array();
  }
  for (const v1::TokenLogprob& logprob : choice.logprobs()) {
    const std::string text = TokenText(tokenizer, logprob.token_id());
    (*out)["tokens"].push_back(text);
    (*out)["token_logprobs"].push_back(FiniteLogprob(logprob.logprob()));
    // As OpenAI's legacy API: a map from token text to logprob, the sampled token included.
    Json top = Json::object();
    for (const v1::TopLogprob& alternative : logprob.top()) {
      const std::string key = TokenText(tokenizer, alternative.token_id());
      if (!top.contains(key)) top[key] = FiniteLogprob(alternative.logprob());
    }
    if (!top.contains(text)) top[text] = FiniteLogprob(logprob.logprob());
    (*out)["top_logprobs"].push_back(std::move(top));
    (*out)["text_offset"].push_back(*text_offset);
    *text_offset += text.size();
  }
}

void AppendChatLogprobs(const v1::Choice& choice, const tokenizer::Tokenizer* tokenizer,
                        Json* out) {
  if (out->is_null()) {
    *out = Json::object();
    (*out)["content"] = Json::array();
  }
  for (const v1::TokenLogprob& logprob : choice.logprobs()) {
    const std::string text = TokenText(tokenizer, logprob.token_id());
    Json entry = Json::object();
    entry["token"] = text;
    entry["logprob"] = FiniteLogprob(logprob.logprob());
    entry["bytes"] = Bytes(text);
    Json top = Json::array();
    for (const v1::TopLogprob& alternative : logprob.top()) {
      const std::string alternative_text = TokenText(tokenizer, alternative.token_id());
      Json item = Json::object();
      item["token"] = alternative_text;
      item["logprob"] = FiniteLogprob(alternative.logprob());
      item["bytes"] = Bytes(alternative_text);
      top.push_back(std::move(item));
    }
    entry["top_logprobs"] = std::move(top);
    (*out)["content"].push_back(std::move(entry));
  }
}

Json UsageJson(uint64_t prompt_tokens, uint64_t completion_tokens) {
  Json usage = Json::object();
  usage["prompt_tokens"] = prompt_tokens;
  usage["completion_tokens"] = completion_tokens;
  usage["total_tokens"] = prompt_tokens + completion_tokens;
  return usage;
}

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string SseEvent(const Json& data) { return absl::StrCat("data: ", Dump(data), "\n\n"); }

}  // namespace pagedllm::openai
