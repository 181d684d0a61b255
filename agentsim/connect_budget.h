// The --connect_rate token bucket of a fleet's connect pump (Fleet, ManagedFleet): one token per
// connection started, refilled at the rate, with at most one second of unused budget carried so
// a pause does not turn into a burst. A rate of 0 is unlimited.
#pragma once

#include <algorithm>
#include <cstdint>

namespace camtunnel::agentsim {

class ConnectBudget {
 public:
  void Start(uint64_t now_ms) { at_ms_ = now_ms; }

  // Refills up to `now_ms`, then takes one token: false when none is left now.
  bool Take(double rate, uint64_t now_ms) {
    if (rate <= 0) {
      return true;
    }
    tokens_ = std::min(tokens_ + rate * static_cast<double>(now_ms - at_ms_) / 1000.0,
                       std::max(1.0, rate));
    at_ms_ = now_ms;
    if (tokens_ < 1) {
      return false;
    }
    tokens_ -= 1;
    return true;
  }

 private:
  double tokens_ = 0;
  uint64_t at_ms_ = 0;
};

}  // namespace camtunnel::agentsim
