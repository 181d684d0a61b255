// Logging for the agent: one line per event on stderr, prefixed "camtunnel-agent: ". No
// timestamps: on a camera the line goes to syslog/journald, which adds its own. Never log a
// secret (agent key, proofs, session keys): callers pass only identifiers and outcomes.
//
// The one exception to the shared structured logger (runtime/log.h) that the gateway, manager
// and agentsim use: the agent links proto/ only, without Abseil or runtime/, and a printf-style
// logger keeps its binary and RSS small on cameras.
#pragma once

#include <string_view>

namespace camtunnel::agent {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Accepts "debug", "info", "warning" (or "warn"), "error".
bool ParseLogLevel(std::string_view text, LogLevel* out);

// printf-style. INFO lines are "camtunnel-agent: <message>" exactly (tests and operators match
// on them); other levels insert "debug: ", "warning: " or "error: " after the prefix.
void Logf(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace camtunnel::agent

#define AGENT_LOG(level, ...)                       \
  do {                                              \
    if (::camtunnel::agent::LogEnabled(level)) {    \
      ::camtunnel::agent::Logf(level, __VA_ARGS__); \
    }                                               \
  } while (0)
#define LOG_DEBUG(...) AGENT_LOG(::camtunnel::agent::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) AGENT_LOG(::camtunnel::agent::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARNING(...) AGENT_LOG(::camtunnel::agent::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) AGENT_LOG(::camtunnel::agent::LogLevel::kError, __VA_ARGS__)
