// The live one-line progress display, on stderr and only when stderr is a terminal: agents up,
// streams, opens per second, errors, Gbit/s, redrawn in place once a second. The coordinator of
// several processes draws the same line from its workers' summed status.
#pragma once

#include <cstdint>

#include "agentsim/live_status.h"

namespace camtunnel::agentsim {

class ProgressLine {
 public:
  ProgressLine();
  bool enabled() const { return enabled_; }
  // Redraws the line; rates are since the previous call.
  void Update(const LiveStatus& status, uint64_t now_ms, double elapsed_s);
  // Ends the line so the summary starts on a fresh one.
  void Finish();

 private:
  bool enabled_ = false;
  bool drawn_ = false;
  uint64_t last_ms_ = 0;
  uint64_t last_opens_ = 0;
  uint64_t last_bytes_ = 0;
};

}  // namespace camtunnel::agentsim
