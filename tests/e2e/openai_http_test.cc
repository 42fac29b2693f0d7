// The OpenAI-compatible HTTP API of a real cluster (the bundled model, tp 1, an API key):
//   - the official `openai` npm client (tests/e2e/openai_client/check.mjs): completions and chat,
//     streaming and not, n > 1, several prompts, logprobs, stop strings, errors, keys; greedy
//     outputs equal to the gRPC path's for the same prompts;
//   - curl for the raw server-sent events;
//   - OpenAI's error shape and status codes; a client that hangs up aborts its request; /metrics
//     parses as Prometheus text and moves; 1,000 streams at once on a bounded number of threads;
//     a full queue is 429.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/coordinator/metrics/prometheus_text.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"
#include "tests/e2e/http_client.h"

namespace pagedllm::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
namespace v1 = pagedllm::v1;

constexpr char kKey[] = "test-key";
const std::vector<std::string> kAuth = {absl::StrCat("Authorization: Bearer ", kKey)};

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }
std::string ChatTemplatePath() { return SourceDir() + "/tests/e2e/testdata/chat_template.jinja"; }

// The coordinator's thread count (/proc/PID/status).
int ThreadCount(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "Threads:")) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

class OpenAiHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions options(ModelDir(), 1);
    options.http = true;
    options.api_key = kKey;
    options.extra_flags = {"--max_waiting=4000", "--max_num_seqs=64",
                           "--chat_template=" + ChatTemplatePath()};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    if (cluster_ == nullptr) return;
    EXPECT_TRUE(cluster_->WaitForAllBlocksFree().ok());
    const absl::Status stopped = cluster_->Stop();
    EXPECT_TRUE(stopped.ok()) << stopped;
    delete cluster_;
  }

  static int port() { return cluster_->http_port(); }

  // The gRPC path's greedy output for a prompt given as token ids.
  static GenerateOutcome GrpcGreedy(const std::vector<int32_t>& ids, int max_tokens,
                                    const std::vector<std::string>& stop = {}) {
    v1::GenerateRequest request = GreedyRequest(ids, max_tokens);
    for (const std::string& s : stop) request.mutable_sampling()->add_stop(s);
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
    auto reader = cluster_->stub().Generate(&context, request);
    GenerateOutcome outcome;
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      for (const v1::Choice& choice : response.choices()) {
        outcome.token_ids.insert(outcome.token_ids.end(), choice.token_ids().begin(),
                                 choice.token_ids().end());
        outcome.texts.push_back(choice.text());
        if (choice.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
          outcome.finish_reason = choice.finish_reason();
        }
      }
    }
    outcome.status = reader->Finish();
    return outcome;
  }

  // Encodes text as a prompt does (with the special tokens), through the gRPC Tokenize.
  static std::vector<int32_t> Tokenize(const std::string& text, bool add_special_tokens) {
    v1::TokenizeRequest request;
    request.set_text(text);
    request.set_add_special_tokens(add_special_tokens);
    v1::TokenizeResponse response;
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
    EXPECT_TRUE(cluster_->stub().Tokenize(&context, request, &response).ok());
    return {response.ids().begin(), response.ids().end()};
  }

  static Cluster* cluster_;
};

Cluster* OpenAiHttpTest::cluster_ = nullptr;

TEST_F(OpenAiHttpTest, TheOpenAiNpmClientGetsTheGrpcPathsOutputs) {
  const std::string client_dir = SourceDir() + "/tests/e2e/openai_client";
  ASSERT_EQ(access((client_dir + "/node_modules/openai/package.json").c_str(), R_OK), 0)
      << "the openai npm package is not installed in " << client_dir
      << "/node_modules: run launch/install-deps.sh";
  json cases;
  cases["base_url"] = absl::StrCat("http://127.0.0.1:", port(), "/v1");
  cases["api_key"] = kKey;
  cases["model"] = "pagedllm-tiny-py";
  cases["completions"] = json::array();
  for (const std::string prompt : {"Hello, my name is", "def fibonacci(n):", "Ünïcødé ✓ 日本語"}) {
    const std::vector<int32_t> ids = Tokenize(prompt, /*add_special_tokens=*/true);
    const GenerateOutcome outcome = GrpcGreedy(ids, 12);
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
    cases["completions"].push_back({{"prompt", prompt},
                                    {"max_tokens", 12},
                                    {"text", outcome.text()},
                                    {"completion_tokens", outcome.token_ids.size()},
                                    {"prompt_tokens", ids.size()}});
  }
  // A stop string from the middle of the first greedy text.
  const std::string first = cases["completions"][0]["text"].get<std::string>();
  const std::vector<std::string> words = absl::StrSplit(first, ' ', absl::SkipEmpty());
  ASSERT_GE(words.size(), 3u) << first;
  const std::string stop = " " + words[2];
  const GenerateOutcome stopped = GrpcGreedy(Tokenize("Hello, my name is", true), 12, {stop});
  ASSERT_TRUE(stopped.status.ok());
  ASSERT_EQ(stopped.finish_reason, v1::FINISH_REASON_STOP);
  cases["stop_case"] = {{"prompt", "Hello, my name is"},
                        {"max_tokens", 12},
                        {"stop", stop},
                        {"text", stopped.text()}};
  // Chat: the template rendered here by hand (tests/e2e/testdata/chat_template.jinja is a plain
  // role-tagged template), tokenized without special tokens, through gRPC.
  cases["chat"] = json::array();
  for (const auto& [system, user] : std::vector<std::pair<std::string, std::string>>{
           {"", "Say hello."}, {"You are terse.", "Write a Python loop."}}) {
    json messages = json::array();
    std::string rendered = "<|bos|>";
    if (!system.empty()) {
      messages.push_back({{"role", "system"}, {"content", system}});
      rendered += "<|system|>\n" + system + "\n";
    }
    messages.push_back({{"role", "user"}, {"content", user}});
    rendered += "<|user|>\n" + user + "\n<|assistant|>\n";
    const GenerateOutcome outcome = GrpcGreedy(Tokenize(rendered, false), 10);
    ASSERT_TRUE(outcome.status.ok());
    cases["chat"].push_back({{"messages", messages},
                             {"max_tokens", 10},
                             {"text", outcome.text()},
                             {"completion_tokens", outcome.token_ids.size()}});
  }
  const std::string cases_path = absl::StrCat(::testing::TempDir(), "/openai-cases-", getpid());
  std::ofstream(cases_path) << cases.dump();
  auto result = RunCommand({"node", client_dir + "/check.mjs", cases_path}, 180000);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->first, 0) << result->second;
  EXPECT_THAT(result->second, HasSubstr(" 0 failed")) << result->second;
  std::cout << result->second;
}

TEST_F(OpenAiHttpTest, CurlSeesServerSentEventsEndingInDone) {
  const std::string body =
      R"({"model":"pagedllm-tiny-py","prompt":"Once upon a time","max_tokens":6,"temperature":0,)"
      R"("stream":true,"stream_options":{"include_usage":true}})";
  auto result = RunCommand(
      {"curl", "-sS", "-N", "-D", "-", "-H", kAuth[0], "-H", "Content-Type: application/json", "-d",
       body, absl::StrCat("http://127.0.0.1:", port(), "/v1/completions")},
      60000);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->first, 0) << result->second;
  const std::string& out = result->second;
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(out, HasSubstr("Content-Type: text/event-stream"));
  const std::string events = out.substr(out.find("\r\n\r\n") + 4);
  const std::vector<std::string> data = SseData(events);
  ASSERT_GE(data.size(), 3u) << events;
  EXPECT_EQ(data.back(), "[DONE]");
  std::string id;
  int tokens_seen = 0;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json chunk = json::parse(data[i]);
    if (id.empty()) id = chunk["id"];
    EXPECT_EQ(chunk["id"], id) << "one id for the whole stream";
    EXPECT_EQ(chunk["object"], "text_completion");
    if (i + 2 == data.size()) {  // the usage chunk
      EXPECT_TRUE(chunk["choices"].empty());
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 6);
    } else {
      EXPECT_TRUE(chunk["usage"].is_null());
      ++tokens_seen;
    }
  }
  EXPECT_GE(tokens_seen, 2);
  EXPECT_TRUE(absl::StartsWith(id, "cmpl-")) << id;
}

TEST_F(OpenAiHttpTest, ErrorsHaveOpenAisShapeAndStatus) {
  struct Case {
    std::string method, path, body;
    std::vector<std::string> headers;
    int status;
    std::string message, param, code;
  };
  const std::string good = R"({"prompt":"hi","max_tokens":2})";
  const std::vector<Case> cases = {
      {"POST", "/v1/completions", good, {}, 401, "needs an API key", "", "invalid_api_key"},
      {"POST",
       "/v1/completions",
       good,
       {"Authorization: Bearer wrong"},
       401,
       "not valid",
       "",
       "invalid_api_key"},
      {"GET", "/v1/models", "", {}, 401, "needs an API key", "", "invalid_api_key"},
      {"POST", "/v1/completions", "{not json", kAuth, 400, "not valid JSON", "", ""},
      {"POST", "/v1/completions", R"({"prompt":"hi","top_p":1.5})", kAuth, 400, "top_p", "top_p",
       ""},
      {"POST", "/v1/completions", R"({"prompt":"hi","n":"two"})", kAuth, 400,
       "n must be an integer, got string", "n", ""},
      {"POST", "/v1/completions", R"({"max_tokens":3})", kAuth, 400, "prompt is required", "prompt",
       ""},
      {"POST", "/v1/completions", R"({"prompt":[]})", kAuth, 400, "empty array", "prompt", ""},
      {"POST", "/v1/completions", R"({"prompt":[1,-2]})", kAuth, 400, "prompt[1]", "prompt[1]", ""},
      {"POST", "/v1/completions", R"({"prompt":"hi","presence_penalty":0.5})", kAuth, 400,
       "presence_penalty is not supported", "presence_penalty", ""},
      {"POST", "/v1/completions", R"({"prompt":"hi","model":"gpt-4"})", kAuth, 404,
       "`gpt-4` does not exist", "model", "model_not_found"},
      {"POST", "/v1/chat/completions", R"({"messages":[{"content":"hi"}]})", kAuth, 400,
       "messages[0].role", "messages[0].role", ""},
      {"POST", "/v1/chat/completions",
       R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", kAuth, 400,
       "not supported", "messages[0].content[0].type", ""},
      {"GET", "/v1/completions", "", kAuth, 405, "method not allowed", "", ""},
      {"GET", "/v1/nothing", "", kAuth, 404, "no route", "", ""},
      {"GET", "/v1/models/other", "", kAuth, 404, "does not exist", "", "model_not_found"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.method, " ", c.path, " ", c.body));
    auto response = HttpFetch(port(), c.method, c.path, c.body, c.headers);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, c.status) << response->body;
    EXPECT_THAT(response->headers["content-type"], HasSubstr("application/json"));
    const json body = json::parse(response->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << response->body;
    const json& error = body["error"];
    EXPECT_THAT(error["message"].get<std::string>(), HasSubstr(c.message));
    EXPECT_TRUE(error["type"].is_string());
    if (c.param.empty()) {
      EXPECT_TRUE(error["param"].is_null()) << error;
    } else {
      EXPECT_EQ(error["param"], c.param) << error;
    }
    if (!c.code.empty()) {
      EXPECT_EQ(error["code"], c.code) << error;
    }
  }
}

TEST_F(OpenAiHttpTest, HealthAndMetricsNeedNoKey) {
  auto health = HttpFetch(port(), "GET", "/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  auto metrics = HttpFetch(port(), "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->headers["content-type"], HasSubstr("text/plain; version=0.0.4"));
}

TEST_F(OpenAiHttpTest, MetricsParseAsPrometheusTextAndMoveAsRequestsRun) {
  auto read = [&] {
    auto response = HttpFetch(port(), "GET", "/metrics");
    EXPECT_TRUE(response.ok());
    auto parsed = coordinator::testing::ParsePrometheusText(response->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << response->body;
    return *parsed;
  };
  const auto before = read();
  const std::map<std::string, std::string> model = {{"model_name", "pagedllm-tiny-py"}};
  const double generated = before.Value("pagedllm:generation_tokens_total", model).value_or(-1);
  const double ttft =
      before.Value("pagedllm:time_to_first_token_seconds_count", model).value_or(-1);
  const double lengths =
      before.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(-1);
  auto done = HttpFetch(port(), "POST", "/v1/completions",
                        R"({"prompt":"metrics","max_tokens":7,"ignore_eos":true})", kAuth);
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->status, 200) << done->body;
  const auto after = read();
  EXPECT_EQ(after.Value("pagedllm:generation_tokens_total", model).value_or(-1), generated + 7);
  EXPECT_EQ(after.Value("pagedllm:time_to_first_token_seconds_count", model).value_or(-1),
            ttft + 1);
  EXPECT_EQ(
      after.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(-1),
      lengths + 1);
  EXPECT_EQ(after.Value("pagedllm:workers_healthy", model).value_or(-1), 1);
}

TEST_F(OpenAiHttpTest, AClientThatHangsUpAbortsItsRequestAndFreesItsBlocks) {
  auto before = cluster_->WaitForAllBlocksFree();
  ASSERT_TRUE(before.ok()) << before.status();
  const int fd = ConnectLoopback(port());
  ASSERT_GE(fd, 0);
  const std::string request = HttpRequestBytes(
      "POST", "/v1/completions",
      R"({"prompt":"a long story","max_tokens":900,"ignore_eos":true,"stream":true})", kAuth);
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string got;
  char buffer[4096];
  while (got.find("data: ") == std::string::npos) {
    pollfd item{fd, POLLIN, 0};
    ASSERT_GT(poll(&item, 1, 30000), 0) << "no first event";
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0);
    got.append(buffer, static_cast<size_t>(n));
  }
  close(fd);  // hang up with ~900 tokens to go
  const auto hung_up = std::chrono::steady_clock::now();
  auto stats = cluster_->WaitForAllBlocksFree(10000);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_LT(std::chrono::steady_clock::now() - hung_up, std::chrono::seconds(5));
  // Aborted, not run to its end: far fewer than the 900 tokens it asked for were generated.
  EXPECT_LT(stats->num_generated_tokens() - before->num_generated_tokens(), 450u);
  EXPECT_THAT(cluster_->ReadLog(), HasSubstr("the HTTP client went away; aborted"));
}

TEST_F(OpenAiHttpTest, AThousandStreamsAtOnceOnABoundedNumberOfThreads) {
  constexpr int kStreams = 1000;
  const std::string request = HttpRequestBytes(
      "POST", "/v1/completions",
      R"({"prompt":[1,2,3],"max_tokens":8,"ignore_eos":true,"stream":true})", kAuth);
  std::vector<int> fds;
  for (int i = 0; i < kStreams; ++i) {
    const int fd = ConnectLoopback(port());
    ASSERT_GE(fd, 0) << "connection " << i;
    ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    fds.push_back(fd);
  }
  std::vector<std::string> raw(kStreams);
  std::vector<bool> open(kStreams, true);
  int num_open = kStreams;
  int max_threads = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  char buffer[65536];
  while (num_open > 0 && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> items;
    std::vector<int> index;
    for (int i = 0; i < kStreams; ++i) {
      if (!open[i]) continue;
      items.push_back({fds[i], POLLIN, 0});
      index.push_back(i);
    }
    if (poll(items.data(), items.size(), 1000) < 0) break;
    for (size_t k = 0; k < items.size(); ++k) {
      if (items[k].revents == 0) continue;
      const int i = index[k];
      const ssize_t n = recv(fds[i], buffer, sizeof(buffer), 0);
      if (n > 0) {
        raw[i].append(buffer, static_cast<size_t>(n));
      } else {
        open[i] = false;
        --num_open;
        close(fds[i]);
      }
    }
    max_threads = std::max(max_threads, ThreadCount(cluster_->coordinator_pid()));
  }
  ASSERT_EQ(num_open, 0) << "streams still open at the deadline";
  int complete = 0;
  std::string first_failure;
  for (int i = 0; i < kStreams; ++i) {
    auto response = ParseHttpResponse(raw[i]);
    if (!response.ok() || response->status != 200) {
      if (first_failure.empty()) first_failure = raw[i].substr(0, 2000);
      continue;
    }
    const std::vector<std::string> data = SseData(response->body);
    int tokens = 0;
    for (size_t e = 0; e + 1 < data.size(); ++e) {
      const json chunk = json::parse(data[e]);
      for (const json& choice : chunk["choices"]) {
        tokens += choice["text"].get<std::string>().empty() ? 0 : 1;
      }
    }
    if (!data.empty() && data.back() == "[DONE]" && tokens >= 1) {
      ++complete;
    } else if (first_failure.empty()) {
      first_failure =
          response->body.substr(response->body.size() > 600 ? response->body.size() - 600 : 0);
    }
  }
  EXPECT_EQ(complete, kStreams) << "the first that failed:\n" << first_failure;
  // gRPC's and the HTTP server's pools, the engine, the supervisor: not a thread per stream.
  EXPECT_LT(max_threads, 80) << "threads seen: " << max_threads;
  std::cout << kStreams << " HTTP streams, at most " << max_threads << " coordinator threads\n";
}

TEST_F(OpenAiHttpTest, ABatchFileGivesOneOutputLinePerInputLineInOrder) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/pagedllm-batch-", getpid());
  ASSERT_EQ(RunCommand({"mkdir", "-p", dir}, 10000)->first, 0);
  std::vector<std::string> input;
  for (int i = 0; i < 40; ++i) {
    input.push_back(json({{"custom_id", absl::StrCat("c", i)},
                          {"method", "POST"},
                          {"url", "/v1/completions"},
                          {"body",
                           {{"prompt", absl::StrCat("Line ", i, " says")},
                            {"max_tokens", 5},
                            {"temperature", 0}}}})
                        .dump());
  }
  input[3] = "{this is not json";
  input[7] = R"({"custom_id":"bad-url","url":"/v1/embeddings","body":{}})";
  input[11] =
      R"({"custom_id":"bad-field","url":"/v1/completions","body":{"prompt":"x","top_p":7}})";
  input[15] =
      json({{"custom_id", "chat"},
            {"url", "/v1/chat/completions"},
            {"body", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}}}})
          .dump();
  {
    std::ofstream file(dir + "/in.jsonl");
    for (const std::string& line : input) file << line << "\n";
  }
  auto result =
      RunCommand({BinDir() + "/pagedllm-batch", "--input", dir + "/in.jsonl", "--output",
                  dir + "/out.jsonl", "--server", absl::StrCat("http://127.0.0.1:", port()),
                  "--api_key", kKey, "--concurrency", "8"},
                 120000);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->first, 0) << result->second;
  EXPECT_THAT(result->second, HasSubstr("40 lines"));
  std::ifstream file(dir + "/out.jsonl");
  std::vector<json> output;
  std::string line;
  while (std::getline(file, line)) output.push_back(json::parse(line));
  ASSERT_EQ(output.size(), input.size());
  for (size_t i = 0; i < output.size(); ++i) {
    SCOPED_TRACE(i);
    const json& out = output[i];
    if (i == 3) {
      EXPECT_TRUE(out["response"].is_null());
      EXPECT_THAT(out["error"]["message"].get<std::string>(), HasSubstr("line 4: not valid JSON"));
    } else if (i == 7) {
      EXPECT_EQ(out["custom_id"], "bad-url");
      EXPECT_THAT(out["error"]["message"].get<std::string>(), HasSubstr("is not served"));
    } else if (i == 11) {
      EXPECT_EQ(out["custom_id"], "bad-field");
      EXPECT_EQ(out["response"]["status_code"], 400);
      EXPECT_EQ(out["response"]["body"]["error"]["param"], "top_p");
    } else if (i == 15) {
      EXPECT_EQ(out["response"]["status_code"], 200);
      EXPECT_EQ(out["response"]["body"]["object"], "chat.completion");
    } else {
      EXPECT_EQ(out["custom_id"], absl::StrCat("c", i));
      ASSERT_EQ(out["response"]["status_code"], 200) << out;
      // Greedy: the same text as a request sent on its own.
      auto alone = HttpFetch(port(), "POST", "/v1/completions",
                             json({{"prompt", absl::StrCat("Line ", i, " says")},
                                   {"max_tokens", 5},
                                   {"temperature", 0}})
                                 .dump(),
                             kAuth);
      ASSERT_TRUE(alone.ok());
      EXPECT_EQ(out["response"]["body"]["choices"][0]["text"],
                json::parse(alone->body)["choices"][0]["text"]);
    }
  }
}

// A second cluster: one sequence at a time and one waiting, so the third request finds the
// queue full.
TEST(OpenAiHttpQueueTest, AFullQueueIs429) {
  ClusterOptions options(ModelDir(), 1);
  options.http = true;
  options.extra_flags = {"--max_num_seqs=1", "--max_waiting=1"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const int port = (*cluster)->http_port();
  const std::string long_request =
      R"({"prompt":"first","max_tokens":800,"ignore_eos":true,"stream":true})";
  // The first runs, the second waits.
  std::vector<int> fds;
  for (int i = 0; i < 2; ++i) {
    const int fd = ConnectLoopback(port);
    ASSERT_GE(fd, 0);
    const std::string bytes = HttpRequestBytes("POST", "/v1/completions", long_request);
    ASSERT_GT(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), 0);
    fds.push_back(fd);
    if (i == 0) {  // the first has its first token before the second arrives
      pollfd item{fd, POLLIN, 0};
      ASSERT_GT(poll(&item, 1, 30000), 0);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto third = HttpFetch(port, "POST", "/v1/completions", R"({"prompt":"third","max_tokens":2})");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->status, 429) << third->body;
  EXPECT_THAT(third->body, HasSubstr("waiting queue is full"));
  for (int fd : fds) close(fd);
  EXPECT_TRUE((*cluster)->WaitForAllBlocksFree().ok());
  EXPECT_TRUE((*cluster)->Stop().ok()) << (*cluster)->ReadLog();
}

}  // namespace
}  // namespace pagedllm::testing
