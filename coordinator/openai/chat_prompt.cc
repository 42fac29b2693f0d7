#include "coordinator/openai/chat_prompt.h"

namespace pagedllm::openai {

absl::StatusOr<std::string> RenderChatPrompt(const chat_template::LoadedChatTemplate& loaded,
                                             const OpenAiRequest& request) {
  chat_template::ChatTemplateInputs inputs;
  inputs.messages = request.messages;
  if (!request.tools.is_null()) inputs.tools = request.tools;
  inputs.add_generation_prompt = request.add_generation_prompt;
  inputs.kwargs = request.chat_template_kwargs;
  absl::StatusOr<std::string> text = loaded.Apply(inputs);
  if (!text.ok() || !request.continue_final_message) return text;
  const nlohmann::ordered_json& last = request.messages.back();
  const std::string content = last.contains("content") && last["content"].is_string()
                                  ? last["content"].get<std::string>()
                                  : "";
  const size_t at = content.empty() ? std::string::npos : text->rfind(content);
  if (at == std::string::npos) {
    return absl::InvalidArgumentError(
        "continue_final_message: the last message's content is not in the rendered prompt");
  }
  text->resize(at + content.size());
  return text;
}

}  // namespace pagedllm::openai
