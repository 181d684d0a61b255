// Structured, leveled, rate-limited log lines on stderr, one event per line, for every io_uring
// process (gateway, manager, agentsim):
//   ts=2026-12-01T21:44:48.123Z level=info event=agent_connected agent=cam-1 remote=10.0.0.9:4711
// Under systemd, when stderr is the journal (JOURNAL_STREAM names it), each line starts with a
// syslog priority prefix ("<6>") instead of the timestamp, so `journalctl -p warning` works.
// Rate limit: per event name and thread, at most `burst` lines per 10 s window; the rest are
// counted (SuppressedLogLines, camtunnel_log_lines_suppressed_total) and the next line of that
// event says how many were dropped (suppressed=N), so a flood of bad handshakes cannot flood the
// journal. Each server exports the count as camtunnel_log_lines_suppressed_total. Never pass
// secrets (keys, proofs, tokens) as fields: nothing here can tell them apart.
//
// Why runtime/: the gateway, the manager and agentsim all link runtime/ already (it is their
// shared process library), the per-thread rate limit follows runtime's one-thread-per-shard
// model, and the line's time is runtime::WallMs; a library of its own would add a target for two
// files. proto/ cannot hold it (no I/O there) and no module above runtime/ is shared by all three.
//
// The one exception is the camera agent (agent/log.h): it links proto/ only and keeps a small
// printf-style logger without Abseil, because its binary size and RSS on cameras matter more than
// one line format everywhere.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace camtunnel::runtime {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
void SetLogLevel(LogLevel level);
// "debug", "info", "warning", "error" -> level; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
bool LogEnabled(LogLevel level);
// Lines per event per 10 s window (at least 1).
void SetLogBurst(uint32_t burst);
uint64_t SuppressedLogLines();

struct LogField {
  std::string_view key;
  std::string value;
};

// One field; numbers and strings alike (Debian's Abseil is C++17: string_view is converted).
template <typename T>
LogField Kv(std::string_view key, const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return {key, std::string(std::string_view(value))};
  } else {
    return {key, absl::StrCat(value)};
  }
}

// Emits `event` with its fields if `level` is enabled and the event's rate allows.
void LogEvent(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

// The line LogEvent would write (without the prefix), for tests.
std::string FormatLogFields(std::string_view event, std::initializer_list<LogField> fields);

}  // namespace camtunnel::runtime
