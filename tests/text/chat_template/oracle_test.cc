// The chat template engine against the reference, Python's jinja2 set up as transformers sets it
// up (oracle/render.py, run once for the whole suite): every template of templates/ (Llama 2 /
// 3 / 3.1 / 3.2, Mistral v0.3 / Nemo, Qwen 2.5 / 3, Gemma 3, Phi 3 / 4, DeepSeek V3 / R1, Hermes,
// SmolLM3, gpt-oss) over every conversation of oracle/conversations.json, with and without the
// generation prompt, must render byte for byte the same text, or fail where Python fails (with
// raise_exception's message); and every snippet of oracle/snippets.json (one feature each) must
// render the same.
//
// Each template is loaded the way the server loads it: written into a model directory as
// tokenizer_config.json's chat_template or as chat_template.jinja, with its special tokens.
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "text/chat_template/chat_template.h"
#include "text/chat_template/chat_template_load.h"

namespace pagedllm::chat_template {
namespace {

using Json = nlohmann::ordered_json;

const std::string kTestDir = std::string(PAGEDLLM_SOURCE_DIR) + "/tests/text/chat_template";
const std::string kOutDir = std::string(PAGEDLLM_BINARY_DIR) + "/chat_template_oracle";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Json ReadJson(const std::string& path) {
  return Json::parse(ReadText(path), nullptr, /*allow_exceptions=*/false);
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string Quote(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The same fixed time render.py's strftime_now formats: 2024-07-26 10:30:05, a Friday.
RenderOptions FixedNow() {
  std::tm now{};
  now.tm_year = 2024 - 1900;
  now.tm_mon = 6;
  now.tm_mday = 26;
  now.tm_hour = 10;
  now.tm_min = 30;
  now.tm_sec = 5;
  now.tm_isdst = -1;
  std::mktime(&now);  // fills in the weekday and day of the year
  RenderOptions options;
  options.now = now;
  return options;
}

// Where `got` and `want` first differ, shown around that point.
std::string Difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  return "first difference at byte " + std::to_string(i) +
         "\n  reference: " + Quote(want.substr(from, 120)) +
         "\n  ours:      " + Quote(got.substr(from, 120));
}

std::vector<std::string> ModelNames() {
  std::vector<std::string> names;
  for (const Json& model : ReadJson(kTestDir + "/templates/models.json")) {
    names.push_back(model["name"].get<std::string>());
  }
  return names;
}

class ChatTemplateOracleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (oracle_ran_) return;  // once for both suites
    oracle_ran_ = true;
    const char* python = std::getenv("PAGEDLLM_PYTHON3");
    const std::string interpreter = python != nullptr ? python : PAGEDLLM_PYTHON3;
    mkdir(kOutDir.c_str(), 0755);
    const std::string command = interpreter + " " + kTestDir + "/oracle/render.py " + kTestDir +
                                " " + kOutDir + "/expected.json 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    if (pipe != nullptr) {
      char buffer[512];
      while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
      oracle_ok_ = pclose(pipe) == 0;
    }
    oracle_output_ = command + "\n" + output;
    if (oracle_ok_) expected_ = ReadJson(kOutDir + "/expected.json");
  }

  void SetUp() override {
    ASSERT_TRUE(oracle_ok_ && expected_.is_object())
        << "the reference renderer failed. It needs python3 with jinja2 (Debian: python3-jinja2; "
           "launch/install-deps.sh installs it); set PAGEDLLM_PYTHON3 to pick an interpreter.\n"
        << oracle_output_;
  }

  static inline bool oracle_ran_ = false;
  static inline bool oracle_ok_ = false;
  static inline std::string oracle_output_;
  static inline Json expected_;
};

// Compares one render with the reference's result; returns whether they agree.
bool Agrees(const Json& want, const absl::StatusOr<std::string>& got, const std::string& what) {
  if (want["ok"].get<bool>()) {
    if (!got.ok()) {
      ADD_FAILURE() << what << ": the reference renders, ours fails: " << got.status()
                    << "\n  reference: " << Quote(want["text"].get<std::string>());
      return false;
    }
    const std::string text = want["text"].get<std::string>();
    if (*got != text) {
      ADD_FAILURE() << what << ": " << Difference(text, *got);
      return false;
    }
    return true;
  }
  const std::string message = want["message"].get<std::string>();
  const std::string type = want["type"].get<std::string>();
  if (got.ok()) {
    ADD_FAILURE() << what << ": the reference fails (" << type << ": " << message
                  << "), ours renders " << Quote(*got);
    return false;
  }
  // raise_exception's message reaches the user: it must be there verbatim.
  if (type == "TemplateError" && got.status().message().find(message) == absl::string_view::npos) {
    ADD_FAILURE() << what << ": raise_exception(" << Quote(message)
                  << ") but ours says: " << got.status();
    return false;
  }
  return true;
}

class ChatOracleTest : public ChatTemplateOracleTest,
                       public ::testing::WithParamInterface<std::string> {};

TEST_P(ChatOracleTest, RendersLikeTransformers) {
  const std::string name = GetParam();
  Json model;
  size_t index = 0;
  for (const Json& m : ReadJson(kTestDir + "/templates/models.json")) {
    if (m["name"] == name) model = m;
    if (model.is_null()) ++index;
  }
  ASSERT_TRUE(model.is_object());
  const std::string source = ReadText(kTestDir + "/templates/" + model["file"].get<std::string>());

  // A model directory as the server sees it: half the models keep the template in
  // tokenizer_config.json, the others in chat_template.jinja.
  const std::string dir = kOutDir + "/" + name;
  mkdir(dir.c_str(), 0755);
  std::remove((dir + "/chat_template.jinja").c_str());
  Json config = model["special_tokens"];
  if (index % 2 == 0) {
    config["chat_template"] = source;
  } else {
    WriteText(dir + "/chat_template.jinja", source);
  }
  WriteText(dir + "/tokenizer_config.json", config.dump(1));
  absl::StatusOr<LoadedChatTemplate> loaded = LoadChatTemplate(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  std::map<std::string, Json> conversations;
  for (const Json& c : ReadJson(kTestDir + "/oracle/conversations.json")) {
    conversations[c["name"].get<std::string>()] = c;
  }
  const RenderOptions now = FixedNow();
  int compared = 0, mismatches = 0;
  for (const Json& want : expected_["chats"]) {
    if (want["model"] != name) continue;
    const Json& conversation = conversations.at(want["conversation"].get<std::string>());
    ChatTemplateInputs inputs;
    inputs.messages = conversation["messages"];
    if (conversation.contains("tools")) inputs.tools = conversation["tools"];
    if (conversation.contains("kwargs")) inputs.kwargs = conversation["kwargs"];
    inputs.add_generation_prompt = want["add_generation_prompt"].get<bool>();
    const std::string what = name + " x " + want["conversation"].get<std::string>() +
                             (inputs.add_generation_prompt ? " + generation prompt" : "");
    ++compared;
    if (!Agrees(want, loaded->Apply(inputs, now), what) && ++mismatches >= 10) break;
  }
  EXPECT_GT(compared, 0) << "no reference results for " << name;
  EXPECT_EQ(mismatches, 0) << "of " << compared << " renders";
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatOracleTest, ::testing::ValuesIn(ModelNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST_F(ChatTemplateOracleTest, SnippetsRenderLikeJinja2) {
  const Json snippets = ReadJson(kTestDir + "/oracle/snippets.json");
  ASSERT_EQ(snippets.size(), expected_["snippets"].size());
  const RenderOptions now = FixedNow();
  int mismatches = 0;
  for (size_t i = 0; i < snippets.size(); ++i) {
    const std::string source = snippets[i]["template"].get<std::string>();
    const Json context = snippets[i].value("context", Json::object());
    absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(source, "snippet");
    absl::StatusOr<std::string> got =
        parsed.ok() ? parsed->Render(context, now) : absl::StatusOr<std::string>(parsed.status());
    if (!Agrees(expected_["snippets"][i], got,
                "snippet " + std::to_string(i) + " " + Quote(source))) {
      ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << snippets.size() << " snippets";
}

}  // namespace
}  // namespace pagedllm::chat_template
