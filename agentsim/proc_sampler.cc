#include "agentsim/proc_sampler.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace camtunnel::agentsim {
namespace {

// utime + stime in clock ticks (fields 14 and 15 of /proc/<pid>/stat; the command name in
// field 2 may hold spaces, so count from the closing parenthesis).
std::optional<uint64_t> CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) {
    return std::nullopt;
  }
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  uint64_t utime = 0;
  uint64_t stime = 0;
  // Field 3 is the first after ')'; utime is field 14.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) {
      utime = std::stoull(f);
    } else if (i == 15) {
      stime = std::stoull(f);
    }
  }
  return utime + stime;
}

std::optional<uint64_t> RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  if (!(in >> size >> resident)) {
    return std::nullopt;
  }
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::optional<double> ProcessCpuSeconds(pid_t pid) {
  const auto ticks = CpuTicks(pid);
  if (!ticks) {
    return std::nullopt;
  }
  return static_cast<double>(*ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

ProcSampler::ProcSampler(pid_t pid) : pid_(pid) {}

void ProcSampler::ResetSummary() {
  samples_ = 0;
  cpu_sum_ = 0;
  cpu_max_ = 0;
  rss_max_ = 0;
}

std::optional<ProcSample> ProcSampler::Sample(uint64_t now_ms) {
  const auto ticks = CpuTicks(pid_);
  const auto rss = RssBytes(pid_);
  if (!ticks || !rss) {
    alive_ = false;
    return std::nullopt;
  }
  if (start_ms_ == 0) {
    start_ms_ = last_ms_ = now_ms;
    last_ticks_ = *ticks;
    rss_last_ = *rss;
    return std::nullopt;  // the first reading only sets the baseline
  }
  ProcSample s;
  s.t_s = static_cast<double>(now_ms - start_ms_) / 1000.0;
  const double dt_s = static_cast<double>(now_ms - last_ms_) / 1000.0;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_percent = dt_s > 0 ? static_cast<double>(*ticks - last_ticks_) / hz / dt_s * 100.0 : 0;
  s.rss_bytes = *rss;
  last_ms_ = now_ms;
  last_ticks_ = *ticks;
  ++samples_;
  cpu_sum_ += s.cpu_percent;
  cpu_max_ = std::max(cpu_max_, s.cpu_percent);
  rss_max_ = std::max(rss_max_, s.rss_bytes);
  rss_last_ = s.rss_bytes;
  return s;
}

}  // namespace camtunnel::agentsim
