// A strict reader of the Prometheus text exposition format 0.0.4, written from the format's
// description (not from our renderer) so that the tests check what a Prometheus server would
// accept: every line is a # HELP, a # TYPE, another comment, a blank line or a sample
// `name{label="value",...} value [timestamp]`; the text ends with a line feed.
//
// On top of the syntax it checks what a scraper relies on:
//   - a family has at most one HELP and one TYPE, its TYPE comes before its samples, and its
//     samples form one group; every sample belongs to a family with a TYPE;
//   - no series (name and label set) appears twice; label names are valid and not repeated;
//   - histograms: per label set, _bucket lines with le in increasing order ending at +Inf,
//     cumulative counts that never decrease, _count equal to the +Inf bucket, and a _sum;
//   - counters are not negative.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::coordinator::testing {

struct PromSample {
  std::string name;  // as written (e.g. x_bucket)
  std::map<std::string, std::string> labels;
  double value = 0.0;
};

struct PromFamily {
  std::string name;
  std::string help;  // unescaped
  std::string type;  // counter, gauge, histogram, summary or untyped
  std::vector<PromSample> samples;
};

struct PromExposition {
  std::vector<PromFamily> families;

  const PromFamily* Family(const std::string& name) const;
  // The value of the sample `name` whose labels include all of `labels`; NOT_FOUND if none,
  // FAILED_PRECONDITION if several match.
  absl::StatusOr<double> Value(const std::string& name,
                               const std::map<std::string, std::string>& labels = {}) const;
};

absl::StatusOr<PromExposition> ParsePrometheusText(const std::string& text);

}  // namespace pagedllm::coordinator::testing
