#include "agentsim/progress_line.h"

#include <unistd.h>

#include <cstdio>

namespace camtunnel::agentsim {

ProgressLine::ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}

void ProgressLine::Update(const SimStats& s, const Fleet& fleet, uint64_t now_ms,
                          double elapsed_s) {
  const uint64_t opens = s.media.opens_total();
  const uint64_t bytes = s.media.bytes_received;
  const double dt = last_ms_ == 0 ? 0 : static_cast<double>(now_ms - last_ms_) / 1000.0;
  const double opens_per_s = dt > 0 ? static_cast<double>(opens - last_opens_) / dt : 0;
  const double gbps = dt > 0 ? static_cast<double>(bytes - last_bytes_) * 8 / dt / 1e9 : 0;
  last_ms_ = now_ms;
  last_opens_ = opens;
  last_bytes_ = bytes;
  if (!enabled_) {
    return;
  }
  const uint64_t errors = s.media.integrity.errors() + s.media.opens_failed();
  // \r and "erase to end of line": the line is redrawn in place.
  std::fprintf(stderr,
               "\r[%6.1fs] agents %zu/%zu up | streams %llu | opens/s %.1f | errors %llu | "
               "%.3f Gbit/s\x1b[K",
               elapsed_s, fleet.up(), fleet.size(),
               static_cast<unsigned long long>(s.media.rtsp_active), opens_per_s,
               static_cast<unsigned long long>(errors), gbps);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (enabled_ && drawn_) {
    std::fputc('\n', stderr);
  }
}

}  // namespace camtunnel::agentsim
