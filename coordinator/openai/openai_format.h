// The JSON pieces of OpenAI responses, from pagedllm.v1 choices: finish reasons, logprobs in
// the completions shape ({tokens, token_logprobs, top_logprobs, text_offset}) and the chat
// shape ({content: [{token, logprob, bytes, top_logprobs}]}), usage, and server-sent events.
#pragma once

#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"
#include "pagedllm/v1/generation.pb.h"
#include "text/tokenizer/tokenizer.h"

namespace pagedllm::openai {

using Json = nlohmann::ordered_json;

// "stop", "length", "abort"; null while the choice goes on.
Json FinishReasonJson(pagedllm::v1::FinishReason reason);

// The text of one token as logprobs show it (special tokens included); "" without a tokenizer.
std::string TokenText(const tokenizer::Tokenizer* tokenizer, int32_t token_id);

// Appends `choice`'s tokens to completions logprobs `out` (an object with the four arrays,
// created when null); `text_offset` is the offset of the next token's text in the choice.
void AppendCompletionLogprobs(const pagedllm::v1::Choice& choice,
                              const tokenizer::Tokenizer* tokenizer, size_t* text_offset,
                              Json* out);
// Appends `choice`'s tokens to chat logprobs `out` ({"content": [...]}, created when null).
void AppendChatLogprobs(const pagedllm::v1::Choice& choice, const tokenizer::Tokenizer* tokenizer,
                        Json* out);

Json UsageJson(uint64_t prompt_tokens, uint64_t completion_tokens);

// "data: <json>\n\n"; invalid UTF-8 in strings is replaced, never an exception.
std::string SseEvent(const Json& data);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";
// `value` as JSON text (invalid UTF-8 replaced).
std::string Dump(const Json& value);

}  // namespace pagedllm::openai
