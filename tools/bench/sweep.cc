#include "tools/bench/sweep.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "tools/bench/plot.h"

namespace pagedllm::bench {

std::string Explosion(const RunReport& report, double rate, double slo_ms) {
  char text[320];
  if (report.failed > 0) return absl::StrCat(report.failed, " requests failed");
  if (report.ttft_ms.p99 > slo_ms) {
    std::snprintf(text, sizeof(text), "p99 TTFT %.1f ms > %g ms (--ttft_slo_ms)",
                  report.ttft_ms.p99, slo_ms);
    return text;
  }
  // The rate the Poisson draws realized (a short run's may fall well short of the nominal one).
  const double offered = report.arrival_rate > 0 ? report.arrival_rate : rate;
  if (report.request_throughput >= 0.9 * offered) return "";
  int length = std::snprintf(text, sizeof(text),
                             "achieved %.2f requests/s < 90%% of the %.2f/s offered (rate %g as "
                             "drawn)",
                             report.request_throughput, offered, rate);
  const double arrivals_s =
      report.arrival_rate > 0 ? (report.num_requests - 1) / report.arrival_rate : 0.0;
  if (report.arrival_rate > 0 && report.completion_rate >= 0.9 * report.arrival_rate &&
      arrivals_s < 10 * report.e2e_ms.p50 / 1e3) {
    std::snprintf(text + length, sizeof(text) - length,
                  " (a short run: its arrivals span %.1f s against a p50 E2E latency of %.2f s, "
                  "and completions kept pace with arrivals, %.2f/s vs %.2f/s; more "
                  "--num_requests decide)",
                  arrivals_s, report.e2e_ms.p50 / 1e3, report.completion_rate, report.arrival_rate);
  }
  return text;
}

absl::Status WriteSweepPlot(const std::string& path, const std::vector<double>& rates,
                            const std::vector<RunReport>& reports, double slo_ms,
                            double explodes_at) {
  std::vector<Series> series(4);
  const char* names[] = {"TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"};
  for (int s = 0; s < 4; ++s) {
    series[s].name = names[s];
    series[s].color = SeriesColor(s);
    series[s].x = rates;
  }
  for (const RunReport& report : reports) {
    series[0].y.push_back(report.ttft_ms.p50);
    series[1].y.push_back(report.ttft_ms.p99);
    series[2].y.push_back(report.tpot_ms.p50);
    series[3].y.push_back(report.tpot_ms.p99);
  }
  Chart ttft, tpot;
  ttft.title = "Time to first token";
  tpot.title = "Time per output token";
  for (Chart* chart : {&ttft, &tpot}) {
    chart->x_label = "request rate (requests/s)";
    chart->y_label = "ms";
  }
  ttft.series = {series[0], series[1]};
  tpot.series = {series[2], series[3]};
  char slo_label[48];
  std::snprintf(slo_label, sizeof(slo_label), "SLO %g ms", slo_ms);
  ttft.y_markers.push_back({slo_ms, {120, 120, 120}, slo_label});
  if (!std::isnan(explodes_at)) {
    const Marker marker{explodes_at, {214, 39, 40}, "explodes"};
    ttft.x_markers.push_back(marker);
    tpot.x_markers.push_back(marker);
  }
  constexpr int kPanelWidth = 560, kHeight = 420;
  Canvas canvas(2 * kPanelWidth, kHeight, kWhite);
  DrawChart(ttft, 0, 0, kPanelWidth, kHeight, &canvas);
  DrawChart(tpot, kPanelWidth, 0, kPanelWidth, kHeight, &canvas);
  return WritePng(canvas, path);
}

}  // namespace pagedllm::bench
