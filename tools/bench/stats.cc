#include "tools/bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace pagedllm::bench {

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(rank));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = rank - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

Summary Summarize(std::vector<double> values) {
  Summary summary;
  summary.count = values.size();
  if (values.empty()) return summary;
  std::sort(values.begin(), values.end());
  summary.mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  summary.p50 = Percentile(values, 0.50);
  summary.p90 = Percentile(values, 0.90);
  summary.p99 = Percentile(values, 0.99);
  return summary;
}

namespace {

// The least-squares slope of y against x; 0 when x does not vary.
double Slope(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 2) return 0;
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double covariance = 0, variance = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    covariance += (x[i] - mean_x) * (y[i] - mean_y);
    variance += (x[i] - mean_x) * (x[i] - mean_x);
  }
  return variance > 0 ? covariance / variance : 0.0;
}

}  // namespace

RunReport Analyze(const std::vector<RequestRecord>& records, double duration_s) {
  RunReport report;
  report.num_requests = static_cast<int>(records.size());
  report.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e, arrivals, completions;
  double first_arrival = 0, last_arrival = 0;
  for (const RequestRecord& record : records) {
    first_arrival = std::min(first_arrival, record.arrival_s);
    last_arrival = std::max(last_arrival, record.arrival_s);
    if (!record.ok) {
      ++report.failed;
      if (report.first_error.empty()) report.first_error = record.error;
      continue;
    }
    ++report.completed;
    report.input_tokens += record.prompt_len;
    report.output_tokens += record.output_tokens;
    e2e.push_back(1e3 * record.latency_s);
    arrivals.push_back(record.arrival_s);
    completions.push_back(record.sent_s + record.latency_s);
    if (record.first_token_s >= 0) ttft.push_back(1e3 * record.first_token_s);
    if (record.first_token_s >= 0 && record.steps > 1) {
      tpot.push_back(1e3 * (record.latency_s - record.first_token_s) / (record.steps - 1));
    }
    for (double gap : record.itl_s) itl.push_back(1e3 * gap);
  }
  if (duration_s > 0) {
    report.request_throughput = report.completed / duration_s;
    report.input_tokens_per_s = report.input_tokens / duration_s;
    report.output_tokens_per_s = report.output_tokens / duration_s;
    report.total_tokens_per_s = (report.input_tokens + report.output_tokens) / duration_s;
  }
  if (last_arrival > first_arrival && arrivals.size() >= 3) {
    report.arrival_rate = (records.size() - 1) / (last_arrival - first_arrival);
    const double slope = Slope(arrivals, completions);
    report.completion_rate = slope > 0 ? report.arrival_rate / slope : report.arrival_rate;
  }
  report.ttft_ms = Summarize(std::move(ttft));
  report.tpot_ms = Summarize(std::move(tpot));
  report.itl_ms = Summarize(std::move(itl));
  report.e2e_ms = Summarize(std::move(e2e));
  return report;
}

Floor ComputeFloor(const FloorInputs& inputs) {
  Floor floor;
  const double sequences = std::max(1, inputs.sequences_per_request);
  int64_t longest = 0, all_output = 0, all_prompt = 0;
  double kv_tokens = 0;  // tokens of context read, over every generated token
  for (const FloorRequest& request : inputs.requests) {
    const double prompt = request.prompt_len, output = request.output_len;
    // Output token i reads prompt + i tokens: sum over i in [0, output).
    kv_tokens += sequences * (output * prompt + output * (output - 1) / 2);
    longest = std::max<int64_t>(longest, request.output_len);
    all_output += request.output_len;
    all_prompt += request.prompt_len;
  }
  const int64_t num_requests = static_cast<int64_t>(inputs.requests.size());
  floor.steps = longest;
  if (inputs.concurrency > 0 && inputs.concurrency < num_requests) {
    floor.steps =
        std::max<int64_t>(longest, (all_output + inputs.concurrency - 1) / inputs.concurrency);
  }
  floor.kv_bytes = kv_tokens * static_cast<double>(inputs.kv_bytes_per_token_per_worker);
  floor.weight_bytes =
      static_cast<double>(floor.steps) * static_cast<double>(inputs.weight_bytes_per_worker);
  if (inputs.memory_gbps > 0) {
    floor.memory_s = (floor.kv_bytes + floor.weight_bytes) / (inputs.memory_gbps * 1e9);
  }
  floor.params_per_worker =
      inputs.bytes_per_param > 0 ? inputs.weight_bytes_per_worker / inputs.bytes_per_param : 0.0;
  floor.gemm_tokens = std::max<int64_t>(0, all_prompt - inputs.skipped_prompt_tokens) +
                      static_cast<int64_t>(sequences) * all_output;
  floor.gemm_flops = 2.0 * floor.params_per_worker * static_cast<double>(floor.gemm_tokens);
  if (inputs.peak_tflops > 0) floor.compute_s = floor.gemm_flops / (inputs.peak_tflops * 1e12);
  floor.compute_bound = floor.compute_s > floor.memory_s;
  floor.time_s = std::max(floor.memory_s, floor.compute_s);
  return floor;
}

}  // namespace pagedllm::bench
