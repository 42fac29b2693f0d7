// A model's chat template (the Jinja2 `chat_template` of tokenizer_config.json or
// chat_template.jinja) rendered in C++ exactly as Hugging Face transformers' apply_chat_template
// renders it: Jinja2's ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
// loopcontrols extension, transformers' tojson (json.dumps, unicode unescaped), the
// raise_exception and strftime_now globals and the {% generation %} tag. Checked byte for byte
// against Python's jinja2 over real templates (tests/text/chat_template).
//
// The output is the prompt text; it already holds the special tokens the template writes (BOS
// and the like), so tokenize it without adding special tokens again.
//
// Supported: see README.md beside this file. A template using anything else fails Parse (and so
// start-up) with UNIMPLEMENTED naming the line and the feature.
//
// Immutable after Parse; Render is const and thread safe.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagedllm::chat_template {

struct Stmt;

struct RenderOptions {
  // What strftime_now() formats; the current local time when unset.
  std::optional<std::tm> now;
};

class ChatTemplate {
 public:
  // `origin` names the template in errors ("/models/x/tokenizer_config.json").
  // INVALID_ARGUMENT for a malformed template, UNIMPLEMENTED for an unsupported feature; the
  // message names origin, line and feature.
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source, std::string_view origin);

  // Renders with `context` (a JSON object) as the template's variables: messages, tools,
  // add_generation_prompt, bos_token, ... A template's raise_exception() and any error Python
  // would raise (a missing key used in `+`, a bad filter argument) give INVALID_ARGUMENT naming
  // origin and line; raise_exception's message is in it verbatim.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const RenderOptions& options = {}) const;

  const std::string& origin() const { return origin_; }

 private:
  ChatTemplate(std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body, std::string origin)
      : body_(std::move(body)), origin_(std::move(origin)) {}

  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
  std::string origin_;
};

}  // namespace pagedllm::chat_template
