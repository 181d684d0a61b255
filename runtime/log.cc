#include "runtime/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "runtime/clock.h"

namespace camtunnel::runtime {
namespace {

constexpr uint64_t kWindowMs = 10'000;
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<uint32_t> g_burst{20};
std::atomic<uint64_t> g_suppressed{0};
constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
// syslog priorities: debug 7, info 6, warning 4, error 3.
constexpr const char* kPriorities[] = {"<7>", "<6>", "<4>", "<3>"};

// systemd sets JOURNAL_STREAM=<device>:<inode> of the stream it connected to stderr; if stderr
// is still that stream (not redirected since), the journal reads our priority prefixes.
bool StderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (env == nullptr || fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) {
    return false;
  }
  return dev == static_cast<unsigned long long>(st.st_dev) &&
         ino == static_cast<unsigned long long>(st.st_ino);
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '=' || c == '\\') {
      return true;
    }
  }
  return false;
}

// Values come from the network too (agent ERROR texts, versions): escape everything that could
// break a line or forge a field.
void AppendValue(std::string* out, std::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", u);
      out->append(hex);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

struct Window {
  uint64_t start_ms = 0;
  uint32_t lines = 0;
  uint64_t suppressed = 0;  // in earlier windows, not reported yet
};

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warning") {
    *level = LogLevel::kWarning;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }
void SetLogBurst(uint32_t burst) { g_burst.store(burst == 0 ? 1 : burst); }
uint64_t SuppressedLogLines() { return g_suppressed.load(std::memory_order_relaxed); }

std::string FormatLogFields(std::string_view event, std::initializer_list<LogField> fields) {
  std::string line = "event=";
  AppendValue(&line, event);
  for (const LogField& f : fields) {
    line.push_back(' ');
    line.append(f.key);
    line.push_back('=');
    AppendValue(&line, f.value);
  }
  return line;
}

void LogEvent(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) {
    return;
  }
  // Per thread (each shard, the main thread): no lock, and one shard's flood cannot silence
  // another's. Event names are a fixed set of literals, so the map stays small.
  thread_local absl::flat_hash_map<std::string, Window> windows;
  const uint64_t now = WallMs();
  Window& w = windows[absl::string_view(event.data(), event.size())];
  if (now - w.start_ms >= kWindowMs) {
    w.start_ms = now;
    w.lines = 0;
  }
  if (++w.lines > g_burst.load(std::memory_order_relaxed)) {
    ++w.suppressed;
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  static const bool journal = StderrIsJournal();
  std::string line;
  const auto i = static_cast<size_t>(level);
  if (journal) {
    line.append(kPriorities[i]);  // the journal stamps the time itself
  } else {
    const time_t secs = static_cast<time_t>(now / 1000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char ts[96];  // room for any int the format may print (GCC checks)
    std::snprintf(ts, sizeof(ts), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(now % 1000));
    line.append(ts);
  }
  line.append("level=").append(kNames[i]).push_back(' ');
  line.append(FormatLogFields(event, fields));
  if (w.suppressed != 0) {
    line.append(" suppressed=").append(std::to_string(w.suppressed));
    w.suppressed = 0;
  }
  line.push_back('\n');
  // One write per line so lines from several shards never interleave.
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace camtunnel::runtime
