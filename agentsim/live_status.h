// The few live figures of a run, once a second: what the progress line draws, and what a worker
// process sends its coordinator on stdout (one "agentsim: status ..." line) so the coordinator
// can draw the whole fleet's line. Counters are totals since the start; rates come from deltas.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace camtunnel::agentsim {

struct LiveStatus {
  uint64_t up = 0;       // agents with a control session
  uint64_t agents = 0;   // agents configured
  uint64_t streams = 0;  // RTSP sessions in progress
  uint64_t opens = 0;    // media opens resolved
  uint64_t errors = 0;   // failed opens + integrity errors, live sessions' included
  uint64_t bytes = 0;    // media bytes received

  LiveStatus& operator+=(const LiveStatus& o);
};

// "agentsim: status up=U agents=N streams=S opens=O errors=E bytes=B\n"
std::string FormatStatusLine(const LiveStatus& s);
// Null for any other line.
std::optional<LiveStatus> ParseStatusLine(std::string_view line);

}  // namespace camtunnel::agentsim
