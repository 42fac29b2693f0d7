#include "coordinator/openai/openai_request.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pagedllm::openai {

namespace v1 = pagedllm::v1;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxPrompts = 1024;

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

const char* TypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    default:
      return "unknown";
  }
}

// The field, or null when absent (null counts as absent, as OpenAI's API does).
const json* Find(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status WrongType(const std::string& field, const char* want, const json& value) {
  return Invalid(absl::StrCat(field, " must be ", want, ", got ", TypeName(value)));
}

absl::StatusOr<std::optional<double>> Number(const json& body, const char* name) {
  const json* value = Find(body, name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) return WrongType(name, "a number", *value);
  const double number = value->get<double>();
  if (!std::isfinite(number)) return Invalid(absl::StrCat(name, " must be finite"));
  return number;
}

// An integer in [lo, hi]; a float with an integral value is taken too (JavaScript clients).
absl::StatusOr<std::optional<int64_t>> Integer(const json& body, const char* name, int64_t lo,
                                               int64_t hi) {
  const json* value = Find(body, name);
  if (value == nullptr) return std::nullopt;
  int64_t number = 0;
  if (value->is_number_unsigned()) {
    const uint64_t u = value->get<uint64_t>();
    number = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                 ? std::numeric_limits<int64_t>::max()
                 : static_cast<int64_t>(u);
  } else if (value->is_number_integer()) {
    number = value->get<int64_t>();
  } else if (value->is_number_float() &&
             std::nearbyint(value->get<double>()) == value->get<double>() &&
             std::abs(value->get<double>()) < 9e18) {
    number = static_cast<int64_t>(value->get<double>());
  } else {
    return WrongType(name, "an integer", *value);
  }
  if (number < lo || number > hi) {
    return Invalid(absl::StrCat(name, " must be in [", lo, ", ", hi, "], got ", number));
  }
  return number;
}

absl::StatusOr<std::optional<bool>> Bool(const json& body, const char* name) {
  const json* value = Find(body, name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) return WrongType(name, "a boolean", *value);
  return value->get<bool>();
}

#define PAGEDLLM_ASSIGN_OR_RETURN_FIELD(lhs, expr) \
  auto lhs##_or = (expr);                          \
  if (!lhs##_or.ok()) return lhs##_or.status();    \
  auto lhs = *lhs##_or

// Fields pagedllm does not implement: refused unless they are absent or at their no-op value,
// so a client never silently gets what it did not ask for.
absl::Status RefuseUnsupported(const json& body, Endpoint endpoint) {
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    PAGEDLLM_ASSIGN_OR_RETURN_FIELD(value, Number(body, name));
    if (value.has_value() && *value != 0.0) {
      return Invalid(absl::StrCat(name, " is not supported by this server (only 0)"));
    }
  }
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(repetition, Number(body, "repetition_penalty"));
  if (repetition.has_value() && *repetition != 1.0) {
    return Invalid("repetition_penalty is not supported by this server (only 1)");
  }
  if (const json* bias = Find(body, "logit_bias"); bias != nullptr && !bias->empty()) {
    return Invalid("logit_bias is not supported by this server");
  }
  if (const json* format = Find(body, "response_format"); format != nullptr) {
    const json* type = format->is_object() ? Find(*format, "type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
      return Invalid("response_format: only {\"type\": \"text\"} is supported by this server");
    }
  }
  for (const char* name : {"guided_json", "guided_regex", "guided_choice", "guided_grammar",
                           "structured_outputs", "prompt_logprobs"}) {
    if (Find(body, name) != nullptr) {
      return Invalid(absl::StrCat(name, " is not supported by this server"));
    }
  }
  if (endpoint == Endpoint::kCompletions) {
    if (const json* suffix = Find(body, "suffix");
        suffix != nullptr && !(suffix->is_string() && suffix->get<std::string>().empty())) {
      return Invalid("suffix is not supported by this server");
    }
  } else {
    if (const json* choice = Find(body, "tool_choice"); choice != nullptr) {
      const bool plain = choice->is_string() && (choice->get<std::string>() == "none" ||
                                                 choice->get<std::string>() == "auto");
      if (!plain) {
        return Invalid(
            "tool_choice: only \"none\" and \"auto\" are supported by this server (tools are "
            "shown to the model through its chat template; calls are not parsed or forced)");
      }
    }
    if (Find(body, "audio") != nullptr) return Invalid("audio is not supported by this server");
  }
  return absl::OkStatus();
}

absl::Status ReadStop(const json& body, v1::SamplingParams* sampling) {
  const json* stop = Find(body, "stop");
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    sampling->add_stop(stop->get<std::string>());
    return absl::OkStatus();
  }
  if (!stop->is_array()) return WrongType("stop", "a string or an array of strings", *stop);
  for (size_t i = 0; i < stop->size(); ++i) {
    if (!(*stop)[i].is_string()) {
      return WrongType(absl::StrCat("stop[", i, "]"), "a string", (*stop)[i]);
    }
    sampling->add_stop((*stop)[i].get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ReadSampling(const json& body, Endpoint endpoint, OpenAiRequest* out,
                          v1::SamplingParams* sampling) {
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  // max_completion_tokens is the chat API's newer name; it wins over max_tokens.
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(max_completion,
                                  Integer(body, "max_completion_tokens", 1, kIntMax));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(max_tokens, Integer(body, "max_tokens", 1, kIntMax));
  if (max_completion.has_value()) max_tokens = max_completion;
  if (max_tokens.has_value()) sampling->set_max_tokens(static_cast<uint32_t>(*max_tokens));

  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(temperature, Number(body, "temperature"));
  if (temperature.has_value()) sampling->set_temperature(static_cast<float>(*temperature));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(top_p, Number(body, "top_p"));
  if (top_p.has_value()) sampling->set_top_p(static_cast<float>(*top_p));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(top_k, Integer(body, "top_k", -1, kIntMax));
  if (top_k.has_value()) sampling->set_top_k(static_cast<int32_t>(*top_k < 0 ? 0 : *top_k));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(min_p, Number(body, "min_p"));
  if (min_p.has_value()) sampling->set_min_p(static_cast<float>(*min_p));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(n, Integer(body, "n", 1, 16));
  if (n.has_value()) sampling->set_n(static_cast<uint32_t>(*n));
  out->n = n.value_or(1);
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(best_of, Integer(body, "best_of", 1, 16));
  if (best_of.has_value()) sampling->set_best_of(static_cast<uint32_t>(*best_of));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(beam, Bool(body, "use_beam_search"));
  sampling->set_use_beam_search(beam.value_or(false));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(length_penalty, Number(body, "length_penalty"));
  if (length_penalty.has_value()) sampling->set_length_penalty(static_cast<float>(*length_penalty));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(early_stopping, Bool(body, "early_stopping"));
  if (early_stopping.has_value()) sampling->set_early_stopping(*early_stopping);
  // Any 64-bit integer: negative seeds are taken as their two's complement.
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(seed, Integer(body, "seed", std::numeric_limits<int64_t>::min(),
                                                std::numeric_limits<int64_t>::max()));
  if (seed.has_value()) sampling->set_seed(static_cast<uint64_t>(*seed));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(ignore_eos, Bool(body, "ignore_eos"));
  sampling->set_ignore_eos(ignore_eos.value_or(false));
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(skip_special, Bool(body, "skip_special_tokens"));
  if (skip_special.has_value()) sampling->set_skip_special_tokens(*skip_special);
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(include_stop, Bool(body, "include_stop_str_in_output"));
  sampling->set_include_stop_str_in_output(include_stop.value_or(false));
  if (absl::Status stop = ReadStop(body, sampling); !stop.ok()) return stop;
  if (const json* ids = Find(body, "stop_token_ids"); ids != nullptr) {
    if (!ids->is_array()) return WrongType("stop_token_ids", "an array of integers", *ids);
    for (size_t i = 0; i < ids->size(); ++i) {
      if (!(*ids)[i].is_number_integer()) {
        return WrongType(absl::StrCat("stop_token_ids[", i, "]"), "an integer", (*ids)[i]);
      }
      const int64_t id = (*ids)[i].get<int64_t>();
      if (id < 0 || id > kIntMax) {
        return Invalid(absl::StrCat("stop_token_ids[", i, "] must be a token id, got ", id));
      }
      sampling->add_stop_token_ids(static_cast<int32_t>(id));
    }
  }

  // Logprobs: completions `logprobs: k`; chat `logprobs: true` with `top_logprobs: k`.
  if (endpoint == Endpoint::kCompletions) {
    PAGEDLLM_ASSIGN_OR_RETURN_FIELD(logprobs, Integer(body, "logprobs", 0, 20));
    if (logprobs.has_value()) out->top_logprobs = static_cast<int>(*logprobs);
  } else {
    PAGEDLLM_ASSIGN_OR_RETURN_FIELD(logprobs, Bool(body, "logprobs"));
    PAGEDLLM_ASSIGN_OR_RETURN_FIELD(top, Integer(body, "top_logprobs", 0, 20));
    if (top.has_value() && !logprobs.value_or(false)) {
      return Invalid("top_logprobs needs logprobs set to true");
    }
    if (logprobs.value_or(false)) out->top_logprobs = static_cast<int>(top.value_or(0));
  }
  if (out->top_logprobs >= 0) sampling->set_logprobs(static_cast<uint32_t>(out->top_logprobs));
  return absl::OkStatus();
}

absl::Status ReadStreamFields(const json& body, OpenAiRequest* out) {
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(stream, Bool(body, "stream"));
  out->stream = stream.value_or(false);
  if (const json* options = Find(body, "stream_options"); options != nullptr) {
    if (!options->is_object()) return WrongType("stream_options", "an object", *options);
    if (!out->stream) return Invalid("stream_options is only allowed with stream set to true");
    const json* usage = Find(*options, "include_usage");
    if (usage != nullptr && !usage->is_boolean()) {
      return WrongType("stream_options.include_usage", "a boolean", *usage);
    }
    out->include_usage = usage != nullptr && usage->get<bool>();
  }
  return absl::OkStatus();
}

// `prompt`: a string, an array of strings, an array of token ids, or an array of such arrays.
absl::Status ReadCompletionPrompts(const json& body, const v1::GenerateRequest& common,
                                   OpenAiRequest* out) {
  const json* prompt = Find(body, "prompt");
  if (prompt == nullptr) return Invalid("prompt is required");
  auto add_text = [&](const std::string& text) {
    v1::GenerateRequest request = common;
    request.set_text(text);
    out->prompts.push_back(std::move(request));
  };
  auto add_ids = [&](const json& ids, const std::string& field) -> absl::Status {
    v1::GenerateRequest request = common;
    auto* token_ids = request.mutable_token_ids();
    for (size_t i = 0; i < ids.size(); ++i) {
      const json& id = ids[i];
      if (!id.is_number_integer()) {
        return WrongType(absl::StrCat(field, "[", i, "]"), "a token id (integer)", id);
      }
      const int64_t value = id.get<int64_t>();
      if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat(field, "[", i, "] = ", value, " is not a token id"));
      }
      token_ids->add_ids(static_cast<int32_t>(value));
    }
    if (token_ids->ids_size() == 0) return Invalid(absl::StrCat(field, " is empty"));
    out->prompts.push_back(std::move(request));
    return absl::OkStatus();
  };
  if (prompt->is_string()) {
    add_text(prompt->get<std::string>());
    return absl::OkStatus();
  }
  if (!prompt->is_array()) {
    return WrongType("prompt", "a string, an array of strings or an array of token ids", *prompt);
  }
  if (prompt->empty()) return Invalid("prompt is an empty array");
  if (prompt->size() > kMaxPrompts) {
    return Invalid(absl::StrCat("prompt has ", prompt->size(), " prompts, at most ", kMaxPrompts));
  }
  const json& first = prompt->front();
  if (first.is_number()) return add_ids(*prompt, "prompt");
  for (size_t i = 0; i < prompt->size(); ++i) {
    const json& item = (*prompt)[i];
    const std::string field = absl::StrCat("prompt[", i, "]");
    if (first.is_string()) {
      if (!item.is_string()) return WrongType(field, "a string like prompt[0]", item);
      add_text(item.get<std::string>());
    } else if (first.is_array()) {
      if (!item.is_array()) return WrongType(field, "an array of token ids like prompt[0]", item);
      if (absl::Status added = add_ids(item, field); !added.ok()) return added;
    } else {
      return WrongType(field, "a string, a token id or an array of token ids", item);
    }
  }
  return absl::OkStatus();
}

// A message's content as the chat template wants it: a string (text parts joined by "\n").
absl::StatusOr<json> MessageContent(const json& content, const std::string& field) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array())
    return WrongType(field, "a string or an array of content parts", content);
  std::vector<std::string> texts;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string part_field = absl::StrCat(field, "[", i, "]");
    if (!part.is_object()) return WrongType(part_field, "an object", part);
    const json* type = Find(part, "type");
    if (type == nullptr || !type->is_string()) {
      return Invalid(absl::StrCat(part_field, ".type must be a string"));
    }
    if (type->get<std::string>() != "text") {
      return Invalid(absl::StrCat(part_field, ".type \"", type->get<std::string>(),
                                  "\" is not supported by this server (text only)"));
    }
    const json* text = Find(part, "text");
    if (text == nullptr || !text->is_string()) {
      return Invalid(absl::StrCat(part_field, ".text must be a string"));
    }
    texts.push_back(text->get<std::string>());
  }
  return json(absl::StrJoin(texts, "\n"));
}

absl::Status ReadMessages(const json& body, OpenAiRequest* out) {
  const json* messages = Find(body, "messages");
  if (messages == nullptr) return Invalid("messages is required");
  if (!messages->is_array()) return WrongType("messages", "an array of messages", *messages);
  if (messages->empty()) return Invalid("messages is an empty array");
  out->messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!message.is_object()) return WrongType(field, "an object", message);
    const json* role = Find(message, "role");
    if (role == nullptr || !role->is_string()) {
      return Invalid(absl::StrCat(field, ".role must be a string"));
    }
    nlohmann::ordered_json copy = nlohmann::ordered_json::parse(message.dump());
    auto content = MessageContent(message.value("content", json()), field + ".content");
    if (!content.ok()) return content.status();
    copy["content"] = nlohmann::ordered_json::parse(content->dump());
    // Templates format tool call arguments as objects; the API sends them as JSON text.
    if (auto calls = copy.find("tool_calls"); calls != copy.end() && calls->is_array()) {
      for (auto& call : *calls) {
        if (!call.is_object()) continue;
        auto function = call.find("function");
        if (function == call.end() || !function->is_object()) continue;
        auto arguments = function->find("arguments");
        if (arguments == function->end() || !arguments->is_string()) continue;
        nlohmann::ordered_json parsed =
            nlohmann::ordered_json::parse(arguments->get<std::string>(), nullptr, false);
        if (!parsed.is_discarded()) *arguments = std::move(parsed);
      }
    }
    out->messages.push_back(std::move(copy));
  }
  if (const json* tools = Find(body, "tools"); tools != nullptr) {
    if (!tools->is_array()) return WrongType("tools", "an array of tools", *tools);
    out->tools = nlohmann::ordered_json::parse(tools->dump());
  }
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(generation_prompt, Bool(body, "add_generation_prompt"));
  out->add_generation_prompt = generation_prompt.value_or(true);
  PAGEDLLM_ASSIGN_OR_RETURN_FIELD(continue_final, Bool(body, "continue_final_message"));
  out->continue_final_message = continue_final.value_or(false);
  if (out->continue_final_message && out->add_generation_prompt && generation_prompt.has_value()) {
    return Invalid("continue_final_message and add_generation_prompt cannot both be true");
  }
  if (out->continue_final_message) out->add_generation_prompt = false;
  if (const json* kwargs = Find(body, "chat_template_kwargs"); kwargs != nullptr) {
    if (!kwargs->is_object()) return WrongType("chat_template_kwargs", "an object", *kwargs);
    out->chat_template_kwargs = nlohmann::ordered_json::parse(kwargs->dump());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, const json& body) {
  if (!body.is_object()) return WrongType("the body", "a JSON object", body);
  OpenAiRequest out;
  out.endpoint = endpoint;
  if (const json* model = Find(body, "model"); model != nullptr) {
    if (!model->is_string()) return WrongType("model", "a string", *model);
    out.model = model->get<std::string>();
  }
  if (absl::Status status = RefuseUnsupported(body, endpoint); !status.ok()) return status;
  if (absl::Status status = ReadStreamFields(body, &out); !status.ok()) return status;
  v1::GenerateRequest common;
  if (absl::Status status = ReadSampling(body, endpoint, &out, common.mutable_sampling());
      !status.ok()) {
    return status;
  }
  if (const json* id = Find(body, "request_id"); id != nullptr) {
    if (!id->is_string()) return WrongType("request_id", "a string", *id);
    common.set_request_id(id->get<std::string>());
  }
  if (endpoint == Endpoint::kCompletions) {
    PAGEDLLM_ASSIGN_OR_RETURN_FIELD(echo, Bool(body, "echo"));
    out.echo = echo.value_or(false);
    if (out.echo && out.top_logprobs >= 0) {
      return Invalid("echo with logprobs is not supported by this server (no prompt logprobs)");
    }
    if (absl::Status status = ReadCompletionPrompts(body, common, &out); !status.ok()) {
      return status;
    }
  } else {
    if (absl::Status status = ReadMessages(body, &out); !status.ok()) return status;
    out.prompts.push_back(std::move(common));
  }
  return out;
}

std::string FieldOf(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) return "";
  absl::string_view message = status.message();
  // Validation of the shared gRPC request names "sampling.top_p"; the JSON field is "top_p".
  if (absl::StartsWith(message, "sampling.")) message.remove_prefix(9);
  const size_t end = message.find_first_of(" :");
  if (end == absl::string_view::npos || end == 0) return "";
  const absl::string_view field = message.substr(0, end);
  for (const char c : field) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' ||
          c == ']')) {
      return "";
    }
  }
  // "the prompt ..." / "prompt has ..." both name the prompt.
  if (field == "the") return "";
  return std::string(field);
}

}  // namespace pagedllm::openai
