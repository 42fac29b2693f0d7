#include "tests/e2e/e2e_util.h"

#include <fstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/e2e/cluster.h"

namespace pagedllm::testing {

nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string GenerateOutcome::text() const {
  std::string all;
  for (const std::string& chunk : texts) all += chunk;
  return all;
}

GenerateOutcome Generate(pagedllm::v1::Generation::Stub& stub,
                         const pagedllm::v1::GenerateRequest& request, int timeout_s) {
  GenerateOutcome outcome;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  auto reader = stub.Generate(&context, request);
  pagedllm::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    ++outcome.num_chunks;
    for (const auto& choice : response.choices()) {
      outcome.token_ids.insert(outcome.token_ids.end(), choice.token_ids().begin(),
                               choice.token_ids().end());
      outcome.logprobs.insert(outcome.logprobs.end(), choice.logprobs().begin(),
                              choice.logprobs().end());
      outcome.texts.push_back(choice.text());
      if (choice.finish_reason() != pagedllm::v1::FINISH_REASON_UNSPECIFIED) {
        outcome.finish_reason = choice.finish_reason();
      }
    }
  }
  outcome.status = reader->Finish();
  return outcome;
}

std::vector<GenerateOutcome> GenerateConcurrently(
    pagedllm::v1::Generation::Stub& stub,
    const std::vector<pagedllm::v1::GenerateRequest>& requests) {
  std::vector<GenerateOutcome> outcomes(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] { outcomes[i] = Generate(stub, requests[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  return outcomes;
}

pagedllm::v1::GenerateRequest GreedyRequest(const std::vector<int32_t>& prompt, int max_tokens,
                                            int logprobs) {
  pagedllm::v1::GenerateRequest request;
  request.mutable_token_ids()->mutable_ids()->Add(prompt.begin(), prompt.end());
  request.mutable_sampling()->set_max_tokens(max_tokens);
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_ignore_eos(true);
  if (logprobs >= 0) request.mutable_sampling()->set_logprobs(logprobs);
  return request;
}

pagedllm::v1::GenerateRequest SampledRequest(const std::vector<int32_t>& prompt, int max_tokens,
                                             float temperature, uint64_t seed) {
  pagedllm::v1::GenerateRequest request = GreedyRequest(prompt, max_tokens);
  request.mutable_sampling()->set_temperature(temperature);
  request.mutable_sampling()->set_seed(seed);
  return request;
}

std::string GoldenModelDir(const std::string& model) {
  return SourceDir() + "/tests/data/models/" + model;
}

std::vector<std::vector<int32_t>> GoldenPrompts(const nlohmann::json& golden) {
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& test_case : golden["cases"]) {
    prompts.push_back(test_case["prompt_ids"].get<std::vector<int32_t>>());
  }
  return prompts;
}

std::string HealthStatus(const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status =
      stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  if (!status.ok()) return "error: " + status.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

}  // namespace pagedllm::testing
