// Ends a streamed output at the first stop string, which may span chunks. Text that could still
// be the start of a stop string is held back until it cannot be; Append returns what is safe to
// send. "First" is the match that ends earliest in the text (among those, the longest, i.e. the
// one starting first); with include_stop_string the text runs to its end, else to its start.
// Empty stop strings are ignored. Not thread safe; one per sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pagedllm::tokenizer {

class StopStringMatcher {
 public:
  StopStringMatcher(std::vector<std::string> stop_strings, bool include_stop_string);

  struct Result {
    std::string text;
    bool stopped = false;
  };
  // After a result with `stopped`, further calls are an error (CHECK).
  Result Append(std::string_view new_text);
  // The held-back text, when the sequence ends otherwise ("" after stopped).
  std::string Flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_strings_;
  bool include_stop_string_;
  size_t max_length_ = 0;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace pagedllm::tokenizer
