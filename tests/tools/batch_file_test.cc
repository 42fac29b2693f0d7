// The OpenAI batch format of pagedllm-batch: good lines parse, every kind of bad line is refused
// naming the line and what is wrong (keeping its custom_id), and output lines have OpenAI's shape.
#include "tools/batch/batch_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "tools/batch/http_post.h"

namespace pagedllm::batch {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(BatchFileTest, AGoodLineParses) {
  std::string custom_id;
  auto request = ParseBatchLine(
      R"({"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}})",
      1, &custom_id);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->custom_id, "r1");
  EXPECT_EQ(request->url, "/v1/chat/completions");
  EXPECT_EQ(json::parse(request->body), json::parse(R"({"messages":[]})"));
}

TEST(BatchFileTest, BadLinesNameTheLineAndTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "line 7: not valid JSON"},
      {"[1,2]", "line 7: not a JSON object"},
      {R"({"custom_id":"x","url":"/v1/completions"})", "line 7: body must be an object"},
      {R"({"custom_id":"x","body":{}})", "line 7: url must be a string"},
      {R"({"custom_id":"x","url":"/v1/embeddings","body":{}})", "is not served"},
      {R"({"custom_id":"x","method":"GET","url":"/v1/completions","body":{}})",
       "method must be \"POST\""},
      {R"({"custom_id":"x","url":"/v1/completions","body":{"stream":true}})",
       "body.stream must be false"},
  };
  for (const auto& [line, message] : cases) {
    std::string custom_id;
    auto request = ParseBatchLine(line, 7, &custom_id);
    ASSERT_FALSE(request.ok()) << line;
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message)) << line;
    if (line.find("\"x\"") != std::string::npos) {
      EXPECT_EQ(custom_id, "x") << line;
    }
  }
}

TEST(BatchFileTest, OutputLinesHaveOpenAisShape) {
  const json ok = json::parse(ResponseLine("r1", 3, 200, R"({"id":"cmpl-1","choices":[]})"));
  EXPECT_EQ(ok["id"], "batch_req_3");
  EXPECT_EQ(ok["custom_id"], "r1");
  EXPECT_EQ(ok["response"]["status_code"], 200);
  EXPECT_EQ(ok["response"]["request_id"], "cmpl-1");
  EXPECT_EQ(ok["response"]["body"]["choices"], json::array());
  EXPECT_TRUE(ok["error"].is_null());
  const json refused = json::parse(ResponseLine("r2", 4, 400, R"({"error":{"message":"m"}})"));
  EXPECT_EQ(refused["response"]["status_code"], 400);
  EXPECT_EQ(refused["response"]["body"]["error"]["message"], "m");
  const json bad = json::parse(ErrorLine("", 5, "invalid_request", "line 5: not valid JSON"));
  EXPECT_TRUE(bad["custom_id"].is_null());
  EXPECT_TRUE(bad["response"].is_null());
  EXPECT_EQ(bad["error"]["code"], "invalid_request");
  EXPECT_EQ(bad["error"]["message"], "line 5: not valid JSON");
}

TEST(BatchFileTest, ServerUrls) {
  EXPECT_EQ(*ParseServerUrl("http://127.0.0.1:8000"),
            std::make_pair(std::string("127.0.0.1"), std::string("8000")));
  EXPECT_EQ(*ParseServerUrl("http://host/v1"),
            std::make_pair(std::string("host"), std::string("80")));
  EXPECT_FALSE(ParseServerUrl("https://host:1").ok());
  EXPECT_FALSE(ParseServerUrl("http://").ok());
}

}  // namespace
}  // namespace pagedllm::batch
