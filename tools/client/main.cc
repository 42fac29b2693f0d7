// pagedllm-client: sends one Generate call and prints the streamed text (or token ids, when the
// server has no tokenizer or --show_ids is set) as it arrives.
//   pagedllm-client --address localhost:50051 --prompt "def fib(n):" --max_tokens 32
//   pagedllm-client --address localhost:50051 --prompt_ids 0,476,290 --max_tokens 32
// Exit status: 0 when the call finished OK, 1 on a gRPC error (printed with its code).
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/flags_usage.h"
#include "grpcpp/create_channel.h"
#include "nlohmann/json.hpp"
#include "pagedllm/v1/generation.grpc.pb.h"

ABSL_FLAG(std::string, address, "localhost:50051", "coordinator address");
ABSL_FLAG(std::string, prompt, "", "prompt text (the server's tokenizer encodes it)");
ABSL_FLAG(std::string, prompt_ids, "", "comma-separated prompt token ids (instead of --prompt)");
ABSL_FLAG(std::string, request_id, "", "request id (optional)");
ABSL_FLAG(int, max_tokens, 16, "tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "0 = greedy");
ABSL_FLAG(double, top_p, 1.0, "nucleus sampling mass");
ABSL_FLAG(int, top_k, 0, "0 = off");
ABSL_FLAG(double, min_p, 0.0, "0 = off");
ABSL_FLAG(int64_t, seed, -1, "sampling seed (-1: the server picks)");
ABSL_FLAG(int, logprobs, -1, "top logprobs per token (-1: none)");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past EOS");
ABSL_FLAG(int, n, 1, "choices (more than one: printed one after another at the end)");
ABSL_FLAG(int, best_of, 0, "samples (or beams) to run, >= n (0: n)");
ABSL_FLAG(bool, use_beam_search, false, "beam search of width best_of (greedy)");
ABSL_FLAG(double, length_penalty, 1.0, "beam search: score = logprob / length^length_penalty");
ABSL_FLAG(bool, early_stopping, false, "beam search: stop once best_of beams finished");
ABSL_FLAG(std::string, stop_token_ids, "", "comma-separated stop token ids");
ABSL_FLAG(std::vector<std::string>, stop, {}, "comma-separated stop strings");
ABSL_FLAG(bool, include_stop_str, false, "keep the matched stop string in the text");
ABSL_FLAG(bool, skip_special_tokens, true, "special tokens add no text");
ABSL_FLAG(bool, show_ids, false, "print token ids even when text comes back");
ABSL_FLAG(int, timeout_s, 300, "deadline of the call");
ABSL_FLAG(bool, json, false, "print one JSON object at the end instead of streaming text");

namespace {

const char* FinishName(pagedllm::v1::FinishReason reason) {
  switch (reason) {
    case pagedllm::v1::FINISH_REASON_LENGTH:
      return "length";
    case pagedllm::v1::FINISH_REASON_STOP:
      return "stop";
    case pagedllm::v1::FINISH_REASON_ABORT:
      return "abort";
    default:
      return "unspecified";
  }
}

bool ParseIds(const std::string& text, const char* flag, std::vector<int32_t>* ids) {
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      std::cerr << "--" << flag << ": \"" << part << "\" is not an integer\n";
      return false;
    }
    ids->push_back(id);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage(
      "pagedllm-client --address HOST:PORT (--prompt TEXT | --prompt_ids 0,1,2) [options]");
  absl::ParseCommandLine(argc, argv);

  pagedllm::v1::GenerateRequest request;
  request.set_request_id(absl::GetFlag(FLAGS_request_id));
  std::vector<int32_t> prompt, stops;
  if (!ParseIds(absl::GetFlag(FLAGS_prompt_ids), "prompt_ids", &prompt) ||
      !ParseIds(absl::GetFlag(FLAGS_stop_token_ids), "stop_token_ids", &stops)) {
    return 2;
  }
  if (!absl::GetFlag(FLAGS_prompt).empty() && !prompt.empty()) {
    std::cerr << "give --prompt or --prompt_ids, not both\n";
    return 2;
  }
  if (!absl::GetFlag(FLAGS_prompt).empty()) {
    request.set_text(absl::GetFlag(FLAGS_prompt));
  } else {
    request.mutable_token_ids()->mutable_ids()->Add(prompt.begin(), prompt.end());
  }
  pagedllm::v1::SamplingParams* sampling = request.mutable_sampling();
  sampling->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  if (!absl::GetFlag(FLAGS_use_beam_search)) {
    sampling->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  }
  sampling->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
  sampling->set_top_k(absl::GetFlag(FLAGS_top_k));
  sampling->set_min_p(static_cast<float>(absl::GetFlag(FLAGS_min_p)));
  if (absl::GetFlag(FLAGS_seed) >= 0) sampling->set_seed(absl::GetFlag(FLAGS_seed));
  if (absl::GetFlag(FLAGS_logprobs) >= 0) sampling->set_logprobs(absl::GetFlag(FLAGS_logprobs));
  sampling->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  sampling->set_n(absl::GetFlag(FLAGS_n));
  if (absl::GetFlag(FLAGS_best_of) > 0) sampling->set_best_of(absl::GetFlag(FLAGS_best_of));
  if (absl::GetFlag(FLAGS_use_beam_search)) {
    sampling->set_use_beam_search(true);
    sampling->set_length_penalty(static_cast<float>(absl::GetFlag(FLAGS_length_penalty)));
    sampling->set_early_stopping(absl::GetFlag(FLAGS_early_stopping));
  }
  sampling->mutable_stop_token_ids()->Add(stops.begin(), stops.end());
  for (const std::string& stop : absl::GetFlag(FLAGS_stop)) sampling->add_stop(stop);
  sampling->set_include_stop_str_in_output(absl::GetFlag(FLAGS_include_stop_str));
  sampling->set_skip_special_tokens(absl::GetFlag(FLAGS_skip_special_tokens));

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  auto stub = pagedllm::v1::Generation::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(absl::GetFlag(FLAGS_timeout_s)));
  auto reader = stub->Generate(&context, request);
  pagedllm::v1::GenerateResponse response;
  const bool json = absl::GetFlag(FLAGS_json);
  const bool show_ids = absl::GetFlag(FLAGS_show_ids) || absl::GetFlag(FLAGS_logprobs) >= 0;
  // One choice streams as it comes; several are gathered and printed at the end.
  const bool streaming = absl::GetFlag(FLAGS_n) == 1 && !json;
  struct ChoiceOut {
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    std::string text;
    std::string finish = "unspecified";
    bool has_cumulative = false;
    double cumulative = 0.0;
  };
  std::map<int, ChoiceOut> choices;
  std::string request_id;
  bool got_text = false;
  while (reader->Read(&response)) {
    request_id = response.request_id();
    for (const pagedllm::v1::Choice& choice : response.choices()) {
      ChoiceOut& out = choices[static_cast<int>(choice.index())];
      out.text += choice.text();
      got_text = got_text || !choice.text().empty();
      if (streaming && !show_ids && got_text) std::cout << choice.text() << std::flush;
      for (int i = 0; i < choice.token_ids_size(); ++i) {
        out.tokens.push_back(choice.token_ids(i));
        if (i < choice.logprobs_size()) out.logprobs.push_back(choice.logprobs(i).logprob());
        if (!streaming || (got_text && !show_ids)) continue;
        std::cout << choice.token_ids(i);
        if (i < choice.logprobs_size())
          std::cout << " (logprob " << choice.logprobs(i).logprob() << ")";
        std::cout << (absl::GetFlag(FLAGS_logprobs) >= 0 ? "\n" : " ") << std::flush;
      }
      if (choice.has_cumulative_logprob()) {
        out.has_cumulative = true;
        out.cumulative = choice.cumulative_logprob();
      }
      if (choice.finish_reason() != pagedllm::v1::FINISH_REASON_UNSPECIFIED) {
        out.finish = FinishName(choice.finish_reason());
        if (!streaming) continue;
        std::cout << "\n[" << request_id << "] finished: " << out.finish << ", "
                  << out.tokens.size() << " tokens\n";
      }
    }
  }
  const grpc::Status status = reader->Finish();
  if (!json && !streaming && status.ok()) {
    for (const auto& [index, out] : choices) {
      std::cout << "[" << request_id << " choice " << index << "] " << out.finish << ", "
                << out.tokens.size() << " tokens";
      if (out.has_cumulative) std::cout << ", cumulative logprob " << out.cumulative;
      std::cout << "\n";
      if (got_text && !show_ids) {
        std::cout << out.text << "\n";
      } else {
        for (int32_t id : out.tokens) std::cout << id << " ";
        std::cout << "\n";
      }
    }
  }
  if (json && status.ok()) {
    auto to_json = [](const ChoiceOut& out) {
      nlohmann::json j;
      j["token_ids"] = out.tokens;
      j["logprobs"] = out.logprobs;
      j["text"] = out.text;
      j["finish_reason"] = out.finish;
      if (out.has_cumulative) j["cumulative_logprob"] = out.cumulative;
      return j;
    };
    nlohmann::json out = choices.empty() ? to_json(ChoiceOut()) : to_json(choices.begin()->second);
    out["request_id"] = request_id;
    if (absl::GetFlag(FLAGS_n) > 1) {
      out["choices"] = nlohmann::json::array();
      for (const auto& [index, choice] : choices) out["choices"].push_back(to_json(choice));
    }
    // Invalid UTF-8 never comes from the server; replace rather than throw if it ever did.
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  }
  if (!status.ok()) {
    std::cerr << "error: " << status.error_code() << " " << status.error_message() << "\n";
    return 1;
  }
  return 0;
}
