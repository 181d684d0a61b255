// The time server certificates are checked against (DESIGN.md "Agent lifecycle"). Cameras often
// have no real-time clock and boot in 1970, so the clock alone would make every certificate "not
// yet valid". Three lower bounds of the true time are known instead: the clock (when it is set),
// the time this agent was built (no certificate it meets expired before that), and the last time
// a verified exchange told us (persisted in the state file). The largest of them is the best.
#pragma once

#include <cstdint>

namespace camtunnel::agent {

// Unix seconds of this build: CMake's configure time, or SOURCE_DATE_EPOCH for a reproducible
// build (agent/CMakeLists.txt passes it as CAMTUNNEL_AGENT_BUILD_TIME).
int64_t BuildTimeUnixS();

// max(clock, build time, last known good time). Each may be 0 (unknown).
int64_t CertificateCheckTime(int64_t clock_s, int64_t build_s, int64_t last_good_s);

// The wall clock in Unix seconds (time(2)); 0 if it fails.
int64_t ClockUnixS();

}  // namespace camtunnel::agent
