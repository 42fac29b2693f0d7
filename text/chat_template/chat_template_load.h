// Finds and parses a model's chat template(s) at start-up, and applies them to chat requests the
// way transformers' tokenizer.apply_chat_template(messages, tools=..., add_generation_prompt=...,
// **kwargs) does.
//
// Where the template comes from, first found wins:
//   1. the --chat_template FILE override (the file's text is the template);
//   2. <model_dir>/chat_template.jinja;
//   3. <model_dir>/chat_template.json ({"chat_template": "..."}, processors' file);
//   4. tokenizer_config.json "chat_template": a string, or a list of {"name", "template"} (the
//      "default" one, and "tool_use" for requests that carry tools).
// Special tokens (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token,
// additional_special_tokens) come from tokenizer_config.json, as strings or AddedToken objects,
// completed from special_tokens_map.json; unset or empty ones are not passed, as transformers
// does not pass them.
//
// Immutable after LoadChatTemplate; thread safe.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "text/chat_template/chat_template.h"

namespace pagedllm::chat_template {

// What a chat request gives the template.
struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // The request's tools (JSON schemas); nullopt when it has none (the template sees None).
  std::optional<nlohmann::ordered_json> tools;
  bool add_generation_prompt = true;
  // Extra template variables (e.g. {"enable_thinking": false}); they override special tokens.
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
};

class LoadedChatTemplate {
 public:
  // The variables transformers renders with: messages, tools (None without tools), documents
  // (None), add_generation_prompt, the special tokens, then `kwargs`.
  absl::StatusOr<nlohmann::ordered_json> MakeContext(const ChatTemplateInputs& inputs) const;

  // The template for a request with or without tools: "tool_use" for one with tools when the
  // model names one, else "default" (the only one for a single template).
  absl::StatusOr<const ChatTemplate*> Select(bool has_tools) const;

  // Select + MakeContext + Render.
  absl::StatusOr<std::string> Apply(const ChatTemplateInputs& inputs,
                                    const RenderOptions& options = {}) const;

  // {"bos_token": "<s>", ...} as passed to the template.
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  // The templates by name ("default" for a single one).
  const std::vector<std::pair<std::string, ChatTemplate>>& templates() const { return templates_; }

 private:
  friend absl::StatusOr<LoadedChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                                             const std::string& override_file);
  LoadedChatTemplate() = default;

  std::vector<std::pair<std::string, ChatTemplate>> templates_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

// NOT_FOUND when the model has no chat template (and no override is given); INVALID_ARGUMENT /
// UNIMPLEMENTED naming the file, line and feature when a template does not parse.
absl::StatusOr<LoadedChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                                    const std::string& override_file = "");

}  // namespace pagedllm::chat_template
