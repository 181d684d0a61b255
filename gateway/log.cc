#include "gateway/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "runtime/clock.h"

namespace camtunnel::gateway {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void LogLine(LogLevel level, std::string_view message) {
  std::string line = absl::StrCat(runtime::WallMs(), " ", kNames[static_cast<int>(level)],
                                  " camtunnel-gateway: ", LogArg(message), "\n");
  // One write per line so lines from several shards never interleave.
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace camtunnel::gateway
