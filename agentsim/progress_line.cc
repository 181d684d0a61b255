#include "agentsim/progress_line.h"

#include <unistd.h>

#include <cstdio>

namespace camtunnel::agentsim {

ProgressLine::ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}

void ProgressLine::Update(const LiveStatus& s, uint64_t now_ms, double elapsed_s) {
  const double dt = last_ms_ == 0 ? 0 : static_cast<double>(now_ms - last_ms_) / 1000.0;
  const double opens_per_s = dt > 0 ? static_cast<double>(s.opens - last_opens_) / dt : 0;
  const double gbps = dt > 0 ? static_cast<double>(s.bytes - last_bytes_) * 8 / dt / 1e9 : 0;
  last_ms_ = now_ms;
  last_opens_ = s.opens;
  last_bytes_ = s.bytes;
  if (!enabled_) {
    return;
  }
  // \r and "erase to end of line": the line is redrawn in place.
  std::fprintf(stderr,
               "\r[%6.1fs] agents %llu/%llu up | streams %llu | opens/s %.1f | errors %llu | "
               "%.3f Gbit/s\x1b[K",
               elapsed_s, static_cast<unsigned long long>(s.up),
               static_cast<unsigned long long>(s.agents),
               static_cast<unsigned long long>(s.streams), opens_per_s,
               static_cast<unsigned long long>(s.errors), gbps);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (enabled_ && drawn_) {
    std::fputc('\n', stderr);
  }
}

}  // namespace camtunnel::agentsim
