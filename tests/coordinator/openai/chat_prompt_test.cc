// Chat prompts from the model's template: messages, tools and kwargs reach the template, and
// continue_final_message ends the text right after the last message's content.
#include "coordinator/openai/chat_prompt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace pagedllm::openai {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::ordered_json;

chat_template::LoadedChatTemplate Load(const std::string& source) {
  const std::string path = ::testing::TempDir() + "/chat-prompt-" + std::to_string(getpid());
  std::ofstream(path) << source;
  absl::StatusOr<chat_template::LoadedChatTemplate> loaded =
      chat_template::LoadChatTemplate(::testing::TempDir(), path);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return *std::move(loaded);
}

constexpr char kTemplate[] =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
    "{% if tools %}[{{ tools | length }} tools]{% endif %}"
    "{% if think is defined %}(think={{ think }}){% endif %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

OpenAiRequest Chat(json messages) {
  OpenAiRequest request;
  request.endpoint = Endpoint::kChatCompletions;
  request.messages = std::move(messages);
  return request;
}

TEST(ChatPromptTest, MessagesToolsAndKwargsReachTheTemplate) {
  const auto loaded = Load(kTemplate);
  OpenAiRequest request = Chat(json::parse(R"([{"role": "user", "content": "hi"}])"));
  request.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  request.chat_template_kwargs = json::parse(R"({"think": false})");
  auto text = RenderChatPrompt(loaded, request);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "<user>hi</user>[1 tools](think=False)<assistant>");
  request.add_generation_prompt = false;
  request.tools = nullptr;
  EXPECT_EQ(*RenderChatPrompt(loaded, request), "<user>hi</user>(think=False)");
}

TEST(ChatPromptTest, ContinueFinalMessageEndsAfterItsContent) {
  const auto loaded = Load(kTemplate);
  OpenAiRequest request = Chat(json::parse(
      R"([{"role": "user", "content": "count"}, {"role": "assistant", "content": "1, 2,"}])"));
  request.add_generation_prompt = false;
  request.continue_final_message = true;
  auto text = RenderChatPrompt(loaded, request);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "<user>count</user><assistant>1, 2,");
  request.messages.back()["content"] = "";
  auto empty = RenderChatPrompt(loaded, request);
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("continue_final_message"));
}

TEST(ChatPromptTest, RaiseExceptionComesBackAsAnError) {
  const auto loaded = Load(
      "{% if messages[0].role != 'user' %}"
      "{{ raise_exception('Conversations must start with a user') }}"
      "{% endif %}ok");
  auto text =
      RenderChatPrompt(loaded, Chat(json::parse(R"([{"role": "system", "content": "s"}])")));
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()),
              HasSubstr("Conversations must start with a user"));
}

}  // namespace
}  // namespace pagedllm::openai
