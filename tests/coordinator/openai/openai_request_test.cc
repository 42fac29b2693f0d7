// Reading OpenAI bodies into GenerateRequests: fields map to the shared request, both logprobs
// shapes, every prompt form, and errors that name their field.
#include "coordinator/openai/openai_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pagedllm::openai {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

OpenAiRequest Parse(Endpoint endpoint, const char* body) {
  absl::StatusOr<OpenAiRequest> parsed = ParseOpenAiRequest(endpoint, json::parse(body));
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *std::move(parsed) : OpenAiRequest();
}

TEST(OpenAiRequestTest, CompletionFieldsMapToTheSharedRequest) {
  const OpenAiRequest r = Parse(Endpoint::kCompletions, R"({
      "model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
      "top_k": -1, "min_p": 0.1, "n": 2, "best_of": 3, "seed": -1, "stop": "x",
      "stop_token_ids": [5], "ignore_eos": true, "logprobs": 3, "stream": true,
      "stream_options": {"include_usage": true}, "echo": false})");
  ASSERT_EQ(r.prompts.size(), 1u);
  const auto& s = r.prompts[0].sampling();
  EXPECT_EQ(r.prompts[0].text(), "hi");
  EXPECT_EQ(s.max_tokens(), 7u);
  EXPECT_FLOAT_EQ(s.temperature(), 0.5f);
  EXPECT_EQ(s.top_k(), 0);  // -1 means off, as vLLM
  EXPECT_EQ(s.n(), 2u);
  EXPECT_EQ(s.best_of(), 3u);
  EXPECT_EQ(s.seed(), ~uint64_t{0});  // two's complement of -1
  ASSERT_EQ(s.stop_size(), 1);
  EXPECT_EQ(s.stop(0), "x");
  EXPECT_EQ(s.logprobs(), 3u);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_EQ(r.n, 2);
}

TEST(OpenAiRequestTest, EveryPromptForm) {
  EXPECT_EQ(Parse(Endpoint::kCompletions, R"({"prompt": ["a", "b", "c"]})").prompts.size(), 3u);
  const OpenAiRequest ids = Parse(Endpoint::kCompletions, R"({"prompt": [1, 2, 3]})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_EQ(ids.prompts[0].token_ids().ids_size(), 3);
  const OpenAiRequest lists = Parse(Endpoint::kCompletions, R"({"prompt": [[1], [2, 3]]})");
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_EQ(lists.prompts[1].token_ids().ids_size(), 2);
}

TEST(OpenAiRequestTest, ChatReadsMessagesLogprobsAndTheNewerLengthField) {
  const OpenAiRequest r = Parse(Endpoint::kChatCompletions, R"({
      "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                {"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": null, "tool_calls": [
                      {"type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}],
      "max_tokens": 5, "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 2,
      "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["content"], "a\nb");  // text parts joined
  // Tool call arguments reach the template as objects, as vLLM passes them.
  EXPECT_EQ(r.messages[1]["tool_calls"][0]["function"]["arguments"]["x"], 1);
  EXPECT_EQ(r.prompts[0].sampling().max_tokens(), 9u);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(r.chat_template_kwargs["enable_thinking"], false);
  EXPECT_TRUE(r.add_generation_prompt);
}

TEST(OpenAiRequestTest, ErrorsNameTheField) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "n": 17})", "n"},
      {R"({"prompt": "x", "stop": [1]})", "stop[0]"},
      {R"({"prompt": "x", "logit_bias": {"1": 2}})", "logit_bias"},
      {R"({"prompt": [[1], "a"]})", "prompt[1]"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
  };
  for (const auto& [body, field] : cases) {
    absl::StatusOr<OpenAiRequest> parsed =
        ParseOpenAiRequest(Endpoint::kCompletions, json::parse(body));
    ASSERT_FALSE(parsed.ok()) << body;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(FieldOf(parsed.status()), field) << parsed.status();
  }
  absl::StatusOr<OpenAiRequest> chat =
      ParseOpenAiRequest(Endpoint::kChatCompletions,
                         json::parse(R"({"messages": [{"role": "user"}], "top_logprobs": 1})"));
  ASSERT_FALSE(chat.ok());
  EXPECT_THAT(std::string(chat.status().message()), HasSubstr("top_logprobs needs logprobs"));
}

TEST(OpenAiRequestTest, FieldOfReadsTheSharedValidationsNames) {
  EXPECT_EQ(FieldOf(absl::InvalidArgumentError("sampling.top_p must be in (0, 1], got 2")),
            "top_p");
  EXPECT_EQ(FieldOf(absl::InvalidArgumentError("the prompt text encodes to token id 9")), "");
  EXPECT_EQ(FieldOf(absl::UnavailableError("top_p is fine")), "");
}

}  // namespace
}  // namespace pagedllm::openai
