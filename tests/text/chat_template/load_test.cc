// Loading a model's chat template: where it comes from (override file, chat_template.jinja,
// chat_template.json, tokenizer_config.json; named templates), the special tokens passed to it,
// the context transformers renders with, and the errors (no template; unsupported feature).
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "text/chat_template/chat_template_load.h"

namespace pagedllm::chat_template {
namespace {

using Json = nlohmann::ordered_json;

// A fresh model directory under the build tree.
std::string ModelDir(const std::string& name) {
  const std::string dir = std::string(PAGEDLLM_BINARY_DIR) + "/chat_template_load_test/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

Json AddedToken(const std::string& content) {
  return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
          {"normalized", true},     {"rstrip", false},    {"single_word", false}};
}

TEST(LoadChatTemplateTest, FromTokenizerConfigWithSpecialTokens) {
  const std::string dir = ModelDir("config");
  Json config = {{"chat_template",
                  "{{ bos_token }}{% for m in messages %}{{ m.content }}"
                  "{% endfor %}{{ eos_token }}|{{ pad_token is defined }}"},
                 {"bos_token", AddedToken("<s>")},
                 {"eos_token", "</s>"},
                 {"pad_token", nullptr},
                 {"unk_token", ""},
                 {"additional_special_tokens", {"<a>", AddedToken("<b>")}}};
  Write(dir + "/tokenizer_config.json", config.dump());
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->special_tokens(), Json({{"bos_token", "<s>"},
                                            {"eos_token", "</s>"},
                                            {"additional_special_tokens", {"<a>", "<b>"}}}));
  ChatTemplateInputs inputs;
  inputs.messages = {{{"role", "user"}, {"content", "hi"}}};
  absl::StatusOr<std::string> out = loaded->Apply(inputs);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<s>hi</s>|False");
  EXPECT_EQ(loaded->templates()[0].second.origin(), dir + "/tokenizer_config.json (chat_template)");
}

TEST(LoadChatTemplateTest, SpecialTokensMapFillsMissingTokens) {
  const std::string dir = ModelDir("special_tokens_map");
  Write(dir + "/tokenizer_config.json", Json({{"chat_template", "x"}, {"eos_token", "E"}}).dump());
  Write(dir + "/special_tokens_map.json",
        Json({{"bos_token", AddedToken("B")}, {"eos_token", "ignored"}}).dump());
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->special_tokens(), Json({{"eos_token", "E"}, {"bos_token", "B"}}));
}

TEST(LoadChatTemplateTest, PrecedenceOverrideThenJinjaFileThenConfig) {
  const std::string dir = ModelDir("precedence");
  Write(dir + "/tokenizer_config.json", Json({{"chat_template", "config"}}).dump());
  Write(dir + "/chat_template.jinja", "jinja file\n");
  Write(dir + "/override.jinja", "override");
  const ChatTemplateInputs inputs;
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Apply(inputs).value_or("error"), "jinja file");
  loaded = LoadChatTemplate(dir, dir + "/override.jinja");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Apply(inputs).value_or("error"), "override");
  EXPECT_EQ(LoadChatTemplate(dir, dir + "/missing.jinja").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LoadChatTemplateTest, NamedTemplatesPickToolUseWhenToolsAreGiven) {
  const std::string dir = ModelDir("named");
  Json config = {{"chat_template",
                  {{{"name", "default"}, {"template", "default {{ tools }}"}},
                   {{"name", "tool_use"}, {"template", "tools {{ tools | length }}"}}}}};
  Write(dir + "/tokenizer_config.json", config.dump());
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ChatTemplateInputs inputs;
  EXPECT_EQ(loaded->Apply(inputs).value_or("error"), "default None");
  inputs.tools = Json::array({Json::object()});
  EXPECT_EQ(loaded->Apply(inputs).value_or("error"), "tools 1");
}

TEST(LoadChatTemplateTest, ContextIsWhatTransformersPasses) {
  const std::string dir = ModelDir("context");
  Write(dir + "/tokenizer_config.json",
        Json({{"chat_template", "x"}, {"bos_token", "<s>"}}).dump());
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ChatTemplateInputs inputs;
  inputs.add_generation_prompt = false;
  inputs.kwargs = {{"enable_thinking", false}, {"bos_token", "<override>"}};
  absl::StatusOr<Json> context = loaded->MakeContext(inputs);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_EQ(*context, Json({{"messages", Json::array()},
                            {"tools", nullptr},
                            {"documents", nullptr},
                            {"add_generation_prompt", false},
                            {"bos_token", "<override>"},
                            {"enable_thinking", false}}));
  inputs.kwargs = {{"messages", Json::array()}};
  EXPECT_EQ(loaded->MakeContext(inputs).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadChatTemplateTest, NoTemplateIsNotFound) {
  const std::string dir = ModelDir("none");
  Write(dir + "/tokenizer_config.json", Json({{"eos_token", "</s>"}}).dump());
  const absl::Status status = LoadChatTemplate(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("--chat_template"), absl::string_view::npos) << status;
}

TEST(LoadChatTemplateTest, UnsupportedFeatureFailsAtLoadNamingFileAndLine) {
  const std::string dir = ModelDir("unsupported");
  Write(dir + "/chat_template.jinja",
        "{% for m in messages %}\n{{ m.content | wordwrap }}\n{% endfor %}");
  const absl::Status status = LoadChatTemplate(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(status.message(),
            dir + "/chat_template.jinja: chat template line 2: unsupported filter 'wordwrap'");
}

}  // namespace
}  // namespace pagedllm::chat_template
