#include "common/logging.h"

#include <atomic>
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

namespace {

std::atomic<int>& FormatSetting() {  // -1: not set yet, read the environment
  static std::atomic<int> format{-1};
  return format;
}

LogFormat CurrentFormat() {
  int format = FormatSetting().load();
  if (format < 0) {
    const char* env = std::getenv("PAGEDLLM_LOG_FORMAT");
    format = env != nullptr && std::strcmp(env, "json") == 0 ? 1 : 0;
    FormatSetting().store(format);
  }
  return format == 1 ? LogFormat::kJson : LogFormat::kText;
}

void AppendJsonString(const std::string& text, std::string* out) {
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out->append(escaped);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

void SetLogFormat(LogFormat format) { FormatSetting().store(format == LogFormat::kJson ? 1 : 0); }

LogMessage::LogMessage(LogLevel level, const char* file, int line)
    : level_(level), file_(file), line_(line) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm_utc;
  gmtime_r(&seconds, &tm_utc);
  char time_text[48];
  const size_t length = std::strftime(time_text, sizeof(time_text), "%Y-%m-%d %H:%M:%S", &tm_utc);
  std::snprintf(time_text + length, sizeof(time_text) - length, ".%03dZ", static_cast<int>(millis));
  time_ = time_text;
  const char* base = std::strrchr(file, '/');
  file_ = base ? base + 1 : file;
}

LogMessage::~LogMessage() {
  std::string prefix;
  {
    std::lock_guard<std::mutex> lock(PrefixMutex());
    prefix = Prefix();
  }
  std::string text;
  if (CurrentFormat() == LogFormat::kJson) {
    static const char* const kNames[] = {"debug", "info", "warning", "error"};
    text = "{\"time\":";
    AppendJsonString(time_, &text);
    text += ",\"level\":";
    AppendJsonString(kNames[static_cast<int>(level_)], &text);
    text += ",\"source\":";
    AppendJsonString(prefix, &text);
    text += ",\"file\":";
    AppendJsonString(std::string(file_) + ":" + std::to_string(line_), &text);
    text += ",\"message\":";
    AppendJsonString(stream_.str(), &text);
    text += "}\n";
  } else {
    text = std::string(LevelName(level_)) + " " + time_ + " " +
           (prefix.empty() ? "" : prefix + " ") + file_ + ":" + std::to_string(line_) + "] " +
           stream_.str() + "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace pagedllm
