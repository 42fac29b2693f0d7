#include "text/chat_template/chat_template_load.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/read_file.h"
#include "common/status.h"

namespace pagedllm::chat_template {
namespace {

using Json = nlohmann::ordered_json;

// transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
constexpr const char* kSpecialTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                          "pad_token", "cls_token", "mask_token"};

absl::StatusOr<Json> ReadJson(const std::string& path) {
  PAGEDLLM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return json;
}

bool Exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error);
}

// A token as tokenizer_config.json writes it: "<s>" or {"__type": "AddedToken", "content": ...}.
std::optional<std::string> TokenText(const Json& token) {
  if (token.is_string()) return token.get<std::string>();
  if (token.is_object() && token.contains("content") && token["content"].is_string()) {
    return token["content"].get<std::string>();
  }
  return std::nullopt;
}

// Adds the special tokens `config` sets and `tokens` lacks.
void AddSpecialTokens(const Json& config, Json* tokens) {
  for (const char* name : kSpecialTokens) {
    if (tokens->contains(name) || !config.contains(name)) continue;
    std::optional<std::string> text = TokenText(config[name]);
    if (text && !text->empty()) (*tokens)[name] = *text;
  }
  if (!tokens->contains("additional_special_tokens") &&
      config.contains("additional_special_tokens") &&
      config["additional_special_tokens"].is_array()) {
    Json list = Json::array();
    for (const Json& token : config["additional_special_tokens"]) {
      if (std::optional<std::string> text = TokenText(token)) list.push_back(*text);
    }
    if (!list.empty()) (*tokens)["additional_special_tokens"] = std::move(list);
  }
}

}  // namespace

absl::StatusOr<LoadedChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                                    const std::string& override_file) {
  LoadedChatTemplate loaded;
  const std::string config_path = model_dir + "/tokenizer_config.json";
  Json config = Json::object();
  if (!model_dir.empty() && Exists(config_path)) {
    PAGEDLLM_ASSIGN_OR_RETURN(config, ReadJson(config_path));
  }
  AddSpecialTokens(config, &loaded.special_tokens_);
  const std::string special_tokens_path = model_dir + "/special_tokens_map.json";
  if (!model_dir.empty() && Exists(special_tokens_path)) {
    PAGEDLLM_ASSIGN_OR_RETURN(Json special_tokens_map, ReadJson(special_tokens_path));
    AddSpecialTokens(special_tokens_map, &loaded.special_tokens_);
  }

  const auto add = [&](const std::string& name, const std::string& text,
                       const std::string& origin) -> absl::Status {
    PAGEDLLM_ASSIGN_OR_RETURN(ChatTemplate parsed, ChatTemplate::Parse(text, origin));
    loaded.templates_.emplace_back(name, std::move(parsed));
    return absl::OkStatus();
  };

  if (!override_file.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(std::string text, ReadFile(override_file));
    PAGEDLLM_RETURN_IF_ERROR(add("default", text, override_file));
    return loaded;
  }
  if (model_dir.empty()) {
    return absl::NotFoundError("no model directory and no --chat_template FILE: no chat template");
  }
  const std::string jinja_path = model_dir + "/chat_template.jinja";
  if (Exists(jinja_path)) {
    PAGEDLLM_ASSIGN_OR_RETURN(std::string text, ReadFile(jinja_path));
    PAGEDLLM_RETURN_IF_ERROR(add("default", text, jinja_path));
    return loaded;
  }
  const std::string processor_path = model_dir + "/chat_template.json";
  if (Exists(processor_path)) {
    PAGEDLLM_ASSIGN_OR_RETURN(Json processor, ReadJson(processor_path));
    if (processor.contains("chat_template") && processor["chat_template"].is_string()) {
      PAGEDLLM_RETURN_IF_ERROR(add("default", processor["chat_template"].get<std::string>(),
                                   processor_path + " (chat_template)"));
      return loaded;
    }
  }
  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const Json& value = config["chat_template"];
    if (value.is_string()) {
      PAGEDLLM_RETURN_IF_ERROR(
          add("default", value.get<std::string>(), config_path + " (chat_template)"));
      return loaded;
    }
    if (!value.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          config_path, ": chat_template must be a string or a list of {name, template}"));
    }
    for (const Json& entry : value) {
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
          !entry.contains("template") || !entry["template"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            config_path, ": each chat_template entry must have a string name and template"));
      }
      const std::string name = entry["name"].get<std::string>();
      PAGEDLLM_RETURN_IF_ERROR(add(name, entry["template"].get<std::string>(),
                                   absl::StrCat(config_path, " (chat_template '", name, "')")));
    }
    if (!loaded.templates_.empty()) return loaded;
  }
  return absl::NotFoundError(absl::StrCat(
      model_dir,
      " has no chat template (no chat_template.jinja, and tokenizer_config.json has no "
      "chat_template); give one with --chat_template FILE"));
}

absl::StatusOr<const ChatTemplate*> LoadedChatTemplate::Select(bool has_tools) const {
  const ChatTemplate* fallback = nullptr;
  for (const auto& [name, chat_template] : templates_) {
    if (has_tools && name == "tool_use") return &chat_template;
    if (name == "default") fallback = &chat_template;
  }
  if (fallback != nullptr) return fallback;
  return absl::InvalidArgumentError(
      "the model has several named chat templates and none is named 'default'");
}

absl::StatusOr<Json> LoadedChatTemplate::MakeContext(const ChatTemplateInputs& inputs) const {
  if (!inputs.messages.is_array()) {
    return absl::InvalidArgumentError("chat template: messages must be a list");
  }
  if (inputs.tools.has_value() && !inputs.tools->is_array()) {
    return absl::InvalidArgumentError("chat template: tools must be a list");
  }
  if (!inputs.kwargs.is_object()) {
    return absl::InvalidArgumentError("chat template: extra variables must be an object");
  }
  Json context = Json::object();
  context["messages"] = inputs.messages;
  context["tools"] = inputs.tools.has_value() ? *inputs.tools : Json(nullptr);
  context["documents"] = nullptr;
  context["add_generation_prompt"] = inputs.add_generation_prompt;
  for (const auto& [name, value] : special_tokens_.items()) context[name] = value;
  for (const auto& [name, value] : inputs.kwargs.items()) {
    if (name == "messages" || name == "tools" || name == "documents" ||
        name == "add_generation_prompt") {
      return absl::InvalidArgumentError(
          absl::StrCat("chat template: extra variables may not set '", name, "'"));
    }
    context[name] = value;
  }
  return context;
}

absl::StatusOr<std::string> LoadedChatTemplate::Apply(const ChatTemplateInputs& inputs,
                                                      const RenderOptions& options) const {
  PAGEDLLM_ASSIGN_OR_RETURN(const ChatTemplate* chat_template, Select(inputs.tools.has_value()));
  PAGEDLLM_ASSIGN_OR_RETURN(Json context, MakeContext(inputs));
  return chat_template->Render(context, options);
}

}  // namespace pagedllm::chat_template
