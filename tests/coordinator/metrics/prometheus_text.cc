#include "tests/coordinator/metrics/prometheus_text.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pagedllm::coordinator::testing {
namespace {

bool IsNameChar(char c, bool first, bool colon_allowed) {
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return letter || (colon_allowed && c == ':') || (!first && c >= '0' && c <= '9');
}

// Reads a name at `*pos` ([a-zA-Z_:][a-zA-Z0-9_:]* for metrics, no colon for labels).
bool ReadName(const std::string& line, size_t* pos, bool colon_allowed, std::string* name) {
  const size_t begin = *pos;
  while (*pos < line.size() && IsNameChar(line[*pos], *pos == begin, colon_allowed)) ++*pos;
  *name = line.substr(begin, *pos - begin);
  return !name->empty();
}

// Go's strconv.ParseFloat as Prometheus uses it, for the forms a renderer writes.
bool ParseValue(const std::string& text, double* value) {
  if (text == "+Inf" || text == "Inf") {
    *value = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *value = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *value = NAN;
    return true;
  }
  if (text.empty()) return false;
  for (char c : text) {
    const bool allowed =
        (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
    if (!allowed) return false;
  }
  char* end = nullptr;
  *value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// Undoes the escapes allowed in HELP (\\ and \n) or in label values (also \").
absl::StatusOr<std::string> Unescape(const std::string& text, bool quote_allowed) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 1 == text.size()) return absl::InvalidArgumentError("a lone \\ at the end");
    const char next = text[++i];
    if (next == '\\') {
      out.push_back('\\');
    } else if (next == 'n') {
      out.push_back('\n');
    } else if (next == '"' && quote_allowed) {
      out.push_back('"');
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown escape \\", std::string(1, next)));
    }
  }
  return out;
}

absl::Status ParseSample(const std::string& line, PromSample* sample) {
  size_t pos = 0;
  if (!ReadName(line, &pos, true, &sample->name)) {
    return absl::InvalidArgumentError("a sample line must start with a metric name");
  }
  if (pos < line.size() && line[pos] == '{') {
    ++pos;
    while (true) {
      if (pos < line.size() && line[pos] == '}') {
        ++pos;
        break;
      }
      std::string label;
      if (!ReadName(line, &pos, false, &label)) return absl::InvalidArgumentError("bad label name");
      if (label.rfind("__", 0) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("reserved label name ", label));
      }
      if (pos + 1 >= line.size() || line[pos] != '=' || line[pos + 1] != '"') {
        return absl::InvalidArgumentError(absl::StrCat("label ", label, " needs =\"value\""));
      }
      pos += 2;
      std::string raw;
      while (pos < line.size() && line[pos] != '"') {
        if (line[pos] == '\\' && pos + 1 < line.size()) raw.push_back(line[pos++]);
        raw.push_back(line[pos++]);
      }
      if (pos == line.size()) return absl::InvalidArgumentError("unterminated label value");
      ++pos;  // the closing quote
      absl::StatusOr<std::string> value = Unescape(raw, true);
      if (!value.ok()) return value.status();
      if (!sample->labels.emplace(label, *value).second) {
        return absl::InvalidArgumentError(absl::StrCat("label ", label, " given twice"));
      }
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
      } else if (pos >= line.size() || line[pos] != '}') {
        return absl::InvalidArgumentError("labels must be separated by , and end with }");
      }
    }
  }
  if (pos >= line.size() || line[pos] != ' ') {
    return absl::InvalidArgumentError("the value must follow a space");
  }
  const std::vector<std::string> rest = absl::StrSplit(line.substr(pos), ' ', absl::SkipEmpty());
  if (rest.empty() || rest.size() > 2) {
    return absl::InvalidArgumentError("expected a value and at most a timestamp");
  }
  if (!ParseValue(rest[0], &sample->value)) {
    return absl::InvalidArgumentError(absl::StrCat("bad value \"", rest[0], "\""));
  }
  if (rest.size() == 2) {
    for (char c : rest[1]) {
      if (!(c >= '0' && c <= '9') && c != '-') return absl::InvalidArgumentError("bad timestamp");
    }
  }
  return absl::OkStatus();
}

// The family a sample of a histogram or summary belongs to (x_bucket, x_sum, x_count -> x).
std::string FamilyNameOf(const std::string& sample_name,
                         const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (sample_name.size() <= s.size() ||
        sample_name.compare(sample_name.size() - s.size(), s.size(), s) != 0) {
      continue;
    }
    const std::string base = sample_name.substr(0, sample_name.size() - s.size());
    auto it = types.find(base);
    if (it != types.end() &&
        (it->second == "histogram" || (it->second == "summary" && s != "_bucket"))) {
      return base;
    }
  }
  return sample_name;
}

absl::Status CheckHistogram(const PromFamily& family) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count), in text order
    bool has_sum = false;
    bool has_count = false;
    double count = 0.0;
  };
  std::map<std::map<std::string, std::string>, Series> series;
  for (const PromSample& sample : family.samples) {
    std::map<std::string, std::string> labels = sample.labels;
    if (sample.name == family.name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) return absl::InvalidArgumentError("a _bucket line without le");
      double bound = 0.0;
      if (!ParseValue(le->second, &bound) || std::isnan(bound)) {
        return absl::InvalidArgumentError(absl::StrCat("bad le \"", le->second, "\""));
      }
      labels.erase(le);
      series[labels].buckets.emplace_back(bound, sample.value);
    } else if (sample.name == family.name + "_sum") {
      if (labels.count("le")) return absl::InvalidArgumentError("_sum with an le label");
      series[labels].has_sum = true;
    } else if (sample.name == family.name + "_count") {
      if (labels.count("le")) return absl::InvalidArgumentError("_count with an le label");
      series[labels].has_count = true;
      series[labels].count = sample.value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", family.name, " has a sample ", sample.name));
    }
  }
  for (const auto& [labels, s] : series) {
    const std::string where =
        absl::StrCat("histogram ", family.name, " (", labels.size(), " labels): ");
    if (s.buckets.empty() || !std::isinf(s.buckets.back().first)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "no le=\"+Inf\" bucket last"));
    }
    for (size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i - 1].first < s.buckets[i].first)) {
        return absl::InvalidArgumentError(absl::StrCat(where, "le not increasing"));
      }
      if (s.buckets[i].second < s.buckets[i - 1].second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "buckets not cumulative at le=", s.buckets[i].first));
      }
    }
    if (!s.has_sum || !s.has_count) {
      return absl::InvalidArgumentError(absl::StrCat(where, "no _sum or no _count"));
    }
    if (s.count != s.buckets.back().second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "_count ", s.count, " is not the +Inf bucket ", s.buckets.back().second));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const PromFamily* PromExposition::Family(const std::string& name) const {
  for (const PromFamily& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

absl::StatusOr<double> PromExposition::Value(
    const std::string& name, const std::map<std::string, std::string>& labels) const {
  const PromSample* found = nullptr;
  for (const PromFamily& family : families) {
    for (const PromSample& sample : family.samples) {
      if (sample.name != name) continue;
      bool match = true;
      for (const auto& [label, value] : labels) {
        auto it = sample.labels.find(label);
        match = match && it != sample.labels.end() && it->second == value;
      }
      if (!match) continue;
      if (found != nullptr) {
        return absl::FailedPreconditionError(absl::StrCat("several samples ", name, " match"));
      }
      found = &sample;
    }
  }
  if (found == nullptr) return absl::NotFoundError(absl::StrCat("no sample ", name));
  return found->value;
}

absl::StatusOr<PromExposition> ParsePrometheusText(const std::string& text) {
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the text must end with a line feed");
  }
  PromExposition out;
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helps;
  std::set<std::string> closed;  // families whose group of samples has ended
  std::set<std::pair<std::string, std::map<std::string, std::string>>> seen;
  std::string current;  // the family of the previous sample
  const auto family_named = [&](const std::string& name) -> PromFamily& {
    for (PromFamily& family : out.families) {
      if (family.name == name) return family;
    }
    out.families.push_back(PromFamily{name, "", "", {}});
    return out.families.back();
  };
  int line_number = 0;
  for (const absl::string_view view : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::string line(view);
    const auto error = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, " \"", line, "\": ", what));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      const std::vector<std::string> words = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (words.size() < 3 || words[0] != "#" || (words[1] != "HELP" && words[1] != "TYPE")) {
        continue;  // a plain comment
      }
      const std::string& name = words[2];
      size_t pos = 0;
      std::string checked;
      if (!ReadName(name, &pos, true, &checked) || pos != name.size()) {
        return error("bad metric name");
      }
      const std::string rest = words.size() == 4 ? words[3] : "";
      if (words[1] == "HELP") {
        if (!helps.insert(name).second) return error("a second HELP");
        absl::StatusOr<std::string> help = Unescape(rest, false);
        if (!help.ok()) return error(std::string(help.status().message()));
        family_named(name).help = *help;
      } else {
        if (types.count(name)) return error("a second TYPE");
        if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
            rest != "untyped") {
          return error("unknown type");
        }
        PromFamily& family = family_named(name);
        if (!family.samples.empty()) return error("TYPE after the family's samples");
        types[name] = rest;
        family.type = rest;
      }
      continue;
    }
    PromSample sample;
    if (absl::Status status = ParseSample(line, &sample); !status.ok()) {
      return error(std::string(status.message()));
    }
    const std::string family_name = FamilyNameOf(sample.name, types);
    if (!types.count(family_name)) return error("a sample of a family without TYPE");
    if (family_name != current) {
      if (closed.count(family_name)) return error("the family's samples are not one group");
      if (!current.empty()) closed.insert(current);
      current = family_name;
    }
    if (!seen.emplace(sample.name, sample.labels).second) return error("a repeated series");
    if (types[family_name] == "counter" && sample.value < 0) return error("a negative counter");
    family_named(family_name).samples.push_back(std::move(sample));
  }
  for (const PromFamily& family : out.families) {
    if (family.type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("family ", family.name, " has no TYPE"));
    }
    if (family.type == "histogram") {
      if (absl::Status status = CheckHistogram(family); !status.ok()) return status;
    }
  }
  return out;
}

}  // namespace pagedllm::coordinator::testing
