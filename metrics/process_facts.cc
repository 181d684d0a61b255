#include "metrics/process_facts.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "metrics/open_fd_count.h"

namespace camtunnel::metrics {
namespace {

double SecondsOf(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Field 22 of /proc/self/stat is the start time in clock ticks after boot. The boot time itself
// (/proc/stat's btime) is hidden by ProcSubset=pid, so it is derived from CLOCK_BOOTTIME.
double StartTimeSeconds() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long start_ticks = 0;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) {
      start_ticks = std::stoull(field);
    }
  }
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double boot = SecondsOf(CLOCK_REALTIME) - SecondsOf(CLOCK_BOOTTIME);
  return boot + static_cast<double>(start_ticks) / ticks_per_second;
}

}  // namespace

ProcessFacts ReadProcessFacts() {
  ProcessFacts f;
  {
    std::ifstream in("/proc/self/statm");
    long pages_total = 0;
    long pages_resident = 0;
    in >> pages_total >> pages_resident;
    f.resident_memory_bytes =
        static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  f.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  // One counter for the process: its listing cache (old kernels) is shared by every scrape.
  static OpenFdCount open_fds;
  if (const int64_t n = open_fds.Get(std::chrono::steady_clock::now()); n >= 0) {
    f.open_fds = static_cast<double>(n);
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    f.max_fds = static_cast<double>(lim.rlim_cur);
  }
  // The start time never changes: read it once.
  static const double start = StartTimeSeconds();
  f.start_time_seconds = start;
  return f;
}

}  // namespace camtunnel::metrics
