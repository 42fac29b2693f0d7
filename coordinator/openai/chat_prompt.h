// The prompt text of an OpenAI chat request: its messages, tools and template arguments through
// the model's chat template, as transformers' apply_chat_template renders them. With
// continue_final_message the text ends right after the last message's content, so that the
// model goes on writing that message.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/openai/openai_request.h"
#include "text/chat_template/chat_template_load.h"

namespace pagedllm::openai {

// INVALID_ARGUMENT when the template fails (its raise_exception message included) or the last
// message's content cannot be found in the text to continue it.
absl::StatusOr<std::string> RenderChatPrompt(const chat_template::LoadedChatTemplate& loaded,
                                             const OpenAiRequest& request);

}  // namespace pagedllm::openai
