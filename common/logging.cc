#include "common/logging.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace pagedllm {
namespace {

std::mutex& PrefixMutex() {
  static std::mutex mutex;
  return mutex;
}
std::string& Prefix() {
  static std::string prefix;
  return prefix;
}

LogLevel LevelFromEnv() {
  const char* env = std::getenv("PAGEDLLM_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
  }
  return "?";
}

}  // namespace

LogLevel MinLogLevel() {
  static const LogLevel level = LevelFromEnv();
  return level;
}

void SetLogPrefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(PrefixMutex());
  Prefix() = prefix;
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm_utc;
  gmtime_r(&seconds, &tm_utc);
  char time_text[32];
  std::strftime(time_text, sizeof(time_text), "%H:%M:%S", &tm_utc);
  const char* base = std::strrchr(file, '/');
  std::string prefix;
  {
    std::lock_guard<std::mutex> lock(PrefixMutex());
    prefix = Prefix();
  }
  stream_ << LevelName(level_) << ' ' << time_text << '.' << (millis < 100 ? "0" : "")
          << (millis < 10 ? "0" : "") << millis << ' ' << (prefix.empty() ? "" : prefix + " ")
          << (base ? base + 1 : file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string text = stream_.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace pagedllm
