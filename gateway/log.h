// Leveled, one-line logs to stderr: "<unix ms> <level> <message>". Never pass secrets (keys,
// proofs, tokens) here.
#pragma once

#include <string_view>

#include "absl/strings/str_cat.h"

namespace camtunnel::gateway {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

// Debian's Abseil is built as C++17: std::string_view must be converted for StrCat.
template <typename T>
const T& LogArg(const T& v) {
  return v;
}
inline absl::string_view LogArg(std::string_view v) { return {v.data(), v.size()}; }

template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (LogEnabled(level)) {
    LogLine(level, absl::StrCat(LogArg(args)...));
  }
}

}  // namespace camtunnel::gateway
