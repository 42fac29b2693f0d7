#include "tools/bench/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pagedllm::bench {

absl::Status ValidateWorkloadOptions(const WorkloadOptions& options) {
  const bool lognormal = options.kind == "sharegpt" || options.kind == "alpaca";
  if (options.kind != "fixed" && !lognormal) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workload must be fixed, sharegpt, alpaca or file, got ", options.kind));
  }
  if (options.num_requests < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--num_requests must be >= 1, got ", options.num_requests));
  }
  if (!lognormal && options.prompt_len < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prompt_len must be >= 1, got ", options.prompt_len));
  }
  if (!lognormal && options.output_len < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--output_len must be >= 1, got ", options.output_len));
  }
  if (lognormal && options.max_len < 2 * kMinDrawnLen) {
    return absl::InvalidArgumentError(absl::StrCat("--max_len must be >= ", 2 * kMinDrawnLen,
                                                   " for --workload ", options.kind, ", got ",
                                                   options.max_len));
  }
  if (options.shared_prefix_len < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shared_prefix_len must be >= 0, got ", options.shared_prefix_len));
  }
  if (options.vocab_low < 0 || options.vocab_high <= options.vocab_low) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt ids are drawn from [--vocab_low, --vocab_high) = [", options.vocab_low,
                     ", ", options.vocab_high, "): empty or negative"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BenchRequest>> MakeWorkload(const WorkloadOptions& options) {
  if (absl::Status valid = ValidateWorkloadOptions(options); !valid.ok()) return valid;
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int> token(options.vocab_low, options.vocab_high - 1);
  const bool lognormal = options.kind != "fixed";
  const LengthMeans means = options.kind == "alpaca" ? kAlpacaMeans : kShareGptMeans;
  // Log-normal with sigma 1 has mean exp(mu + 1/2): mu = ln(mean) - 1/2.
  std::lognormal_distribution<double> prompt_dist(std::log(means.prompt) - 0.5, 1.0);
  std::lognormal_distribution<double> output_dist(std::log(means.output) - 0.5, 1.0);
  const auto draw = [&](std::lognormal_distribution<double>& dist, int cap) {
    return static_cast<int>(std::clamp(std::lround(dist(rng)), static_cast<long>(kMinDrawnLen),
                                       static_cast<long>(cap)));
  };
  std::vector<int32_t> shared_prefix(options.shared_prefix_len);
  for (int32_t& id : shared_prefix) id = token(rng);

  std::vector<BenchRequest> requests(options.num_requests);
  for (BenchRequest& request : requests) {
    int prompt_len = options.prompt_len;
    int output_len = options.output_len;
    if (lognormal) {
      // Capped, not redrawn: prompt + output <= max_len, each at least kMinDrawnLen.
      prompt_len = draw(prompt_dist, options.max_len - kMinDrawnLen);
      output_len = draw(output_dist, options.max_len - prompt_len);
    }
    request.output_len = output_len;
    request.prompt_ids = shared_prefix;
    request.prompt_ids.reserve(shared_prefix.size() + prompt_len);
    for (int i = 0; i < prompt_len; ++i) request.prompt_ids.push_back(token(rng));
  }
  return requests;
}

absl::StatusOr<std::vector<BenchRequest>> ReadWorkloadFile(const std::string& path,
                                                           int vocab_size) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--workload_file ", path, ": cannot open"));
  std::vector<BenchRequest> requests;
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat(path, ":", line_number, ": ");
    const nlohmann::json entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (entry.is_discarded()) return absl::InvalidArgumentError(where + "not a JSON object");
    if (!entry.is_object() || !entry.contains("prompt_ids") || !entry.contains("output_len")) {
      return absl::InvalidArgumentError(where +
                                        "expected {\"prompt_ids\": [...], \"output_len\": N}");
    }
    const nlohmann::json& ids = entry["prompt_ids"];
    const nlohmann::json& output_len = entry["output_len"];
    if (!ids.is_array() || ids.empty()) {
      return absl::InvalidArgumentError(where + "prompt_ids must be a non-empty array");
    }
    if (!output_len.is_number_integer() || output_len.get<int64_t>() < 1 ||
        output_len.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(where + "output_len must be an integer >= 1, got " +
                                        output_len.dump());
    }
    BenchRequest request;
    request.output_len = output_len.get<int>();
    request.prompt_ids.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const bool in_range = ids[i].is_number_integer() && ids[i].get<int64_t>() >= 0 &&
                            (vocab_size <= 0 || ids[i].get<int64_t>() < vocab_size) &&
                            ids[i].get<int64_t>() <= std::numeric_limits<int32_t>::max();
      if (!in_range) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "prompt_ids[", i, "] = ", ids[i].dump(), " is not a token id in [0, ",
            vocab_size > 0 ? absl::StrCat(vocab_size) : std::string("2^31"), ")"));
      }
      request.prompt_ids.push_back(ids[i].get<int32_t>());
    }
    requests.push_back(std::move(request));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  if (requests.empty()) return absl::InvalidArgumentError(path + ": no requests in the file");
  return requests;
}

absl::Status WriteWorkloadFile(const std::string& path, const std::vector<BenchRequest>& requests) {
  std::ofstream out(path);
  if (!out) return absl::NotFoundError(absl::StrCat("--save_workload ", path, ": cannot open"));
  for (const BenchRequest& request : requests) {
    const nlohmann::ordered_json entry = {{"prompt_ids", request.prompt_ids},
                                          {"output_len", request.output_len}};
    out << entry.dump() << '\n';
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("--save_workload ", path, ": write failed"));
  return absl::OkStatus();
}

std::vector<double> PoissonArrivals(int num_requests, double rate, uint64_t seed) {
  std::vector<double> arrivals(std::max(0, num_requests), 0.0);
  if (std::isinf(rate)) return arrivals;
  // Its own stream, so that the arrivals never change the workload's draws.
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::exponential_distribution<double> gap(1.0);
  for (size_t i = 1; i < arrivals.size(); ++i) arrivals[i] = arrivals[i - 1] + gap(rng) / rate;
  return arrivals;
}

}  // namespace pagedllm::bench
