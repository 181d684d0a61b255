// See backoff.h.
#include "agent/backoff.h"

namespace camtunnel::agent {

int64_t Backoff::CurrentCeilingMs() const {
  int64_t ceiling = policy_.base_ms > 0 ? policy_.base_ms : 1;
  for (int i = 0; i < attempt_ && ceiling < policy_.cap_ms; ++i) {
    ceiling *= 2;
  }
  return ceiling < policy_.cap_ms ? ceiling : policy_.cap_ms;
}

int64_t Backoff::NextDelayMs() {
  int64_t delay = UniformMs(CurrentCeilingMs());
  if (CurrentCeilingMs() < policy_.cap_ms) {
    ++attempt_;  // stops growing at the cap, so attempt_ never overflows
  }
  return delay;
}

void Backoff::JumpToCap() {
  while (CurrentCeilingMs() < policy_.cap_ms) {
    ++attempt_;
  }
}

int64_t Backoff::UniformMs(int64_t bound_ms) {
  if (bound_ms <= 0) {
    return 0;
  }
  std::uniform_int_distribution<int64_t> dist(0, bound_ms - 1);
  return dist(rng_);
}

}  // namespace camtunnel::agent
