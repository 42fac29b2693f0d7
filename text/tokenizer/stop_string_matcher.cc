#include "text/tokenizer/stop_string_matcher.h"

#include <algorithm>

#include "common/check.h"

namespace pagedllm::tokenizer {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings,
                                     bool include_stop_string)
    : include_stop_string_(include_stop_string) {
  for (std::string& s : stop_strings) {
    if (s.empty()) continue;
    max_length_ = std::max(max_length_, s.size());
    stop_strings_.push_back(std::move(s));
  }
}

StopStringMatcher::Result StopStringMatcher::Append(std::string_view new_text) {
  PAGEDLLM_CHECK(!stopped_, "StopStringMatcher::Append after a stop string matched");
  Result result;
  if (stop_strings_.empty()) {
    result.text.assign(new_text);
    return result;
  }
  held_.append(new_text);
  // `held_` had no complete match before, so any match ends in the new text.
  size_t best_begin = std::string::npos, best_end = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    const size_t from = held_.size() - new_text.size();
    const size_t search_from = from + 1 > stop.size() ? from + 1 - stop.size() : 0;
    const size_t begin = held_.find(stop, search_from);
    if (begin == std::string::npos) continue;
    const size_t end = begin + stop.size();
    if (end < best_end || (end == best_end && begin < best_begin)) {
      best_begin = begin;
      best_end = end;
    }
  }
  if (best_end != std::string::npos) {
    result.text = held_.substr(0, include_stop_string_ ? best_end : best_begin);
    result.stopped = stopped_ = true;
    held_.clear();
    return result;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& stop : stop_strings_) {
    for (size_t k = std::min(stop.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, stop, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  result.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return result;
}

std::string StopStringMatcher::Flush() {
  std::string text;
  text.swap(held_);
  return text;
}

}  // namespace pagedllm::tokenizer
