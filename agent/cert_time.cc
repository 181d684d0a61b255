// See cert_time.h.
#include "agent/cert_time.h"

#include <algorithm>
#include <ctime>

#ifndef CAMTUNNEL_AGENT_BUILD_TIME
#error "agent/CMakeLists.txt must define CAMTUNNEL_AGENT_BUILD_TIME (Unix seconds of the build)"
#endif

namespace camtunnel::agent {

int64_t BuildTimeUnixS() { return static_cast<int64_t>(CAMTUNNEL_AGENT_BUILD_TIME); }

int64_t CertificateCheckTime(int64_t clock_s, int64_t build_s, int64_t last_good_s) {
  return std::max({clock_s, build_s, last_good_s, int64_t{0}});
}

int64_t ClockUnixS() {
  const time_t now = std::time(nullptr);
  return now == static_cast<time_t>(-1) ? 0 : static_cast<int64_t>(now);
}

}  // namespace camtunnel::agent
