// Minimal leveled logging to stderr: PAGEDLLM_LOG(INFO) << "text";
// Abseil 20220623 has no logging library. Thread safe: each message is written with one call.
#pragma once

#include <sstream>
#include <string>

namespace pagedllm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Set from PAGEDLLM_LOG_LEVEL (debug|info|warning|error).
LogLevel MinLogLevel();
void SetLogPrefix(const std::string& prefix);  // e.g. "worker[1]"

// text: "I 2026-12-06 12:24:23.436Z worker[0] main.cc:93] message" (UTC); json: one object a line
// {"time", "level", "source", "file", "message"}. From PAGEDLLM_LOG_FORMAT (text|json) unless
// set; the coordinator's --log_format sets that variable, which mpirun hands to the workers.
enum class LogFormat { kText, kJson };
void SetLogFormat(LogFormat format);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::string time_;  // UTC, to the millisecond
  std::ostringstream stream_;
};

}  // namespace pagedllm

#define PAGEDLLM_LOG_LEVEL_DEBUG ::pagedllm::LogLevel::kDebug
#define PAGEDLLM_LOG_LEVEL_INFO ::pagedllm::LogLevel::kInfo
#define PAGEDLLM_LOG_LEVEL_WARNING ::pagedllm::LogLevel::kWarning
#define PAGEDLLM_LOG_LEVEL_ERROR ::pagedllm::LogLevel::kError

#define PAGEDLLM_LOG(level)                                     \
  if (PAGEDLLM_LOG_LEVEL_##level < ::pagedllm::MinLogLevel()) { \
  } else                                                        \
    ::pagedllm::LogMessage(PAGEDLLM_LOG_LEVEL_##level, __FILE__, __LINE__).stream()
