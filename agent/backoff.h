// Reconnect pacing: exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): attempt n waits uniform [0, min(cap, base * 2^n)). Full jitter spreads a
// fleet that lost its gateway at the same instant; the cap bounds the outage a camera adds.
#pragma once

#include <cstdint>
#include <random>

namespace camtunnel::agent {

struct BackoffPolicy {
  int64_t base_ms = 500;
  int64_t cap_ms = 30000;
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), rng_(seed) {}

  // The delay before the next attempt; each call doubles the ceiling up to the cap.
  int64_t NextDelayMs();
  // The ceiling NextDelayMs() would use now.
  int64_t CurrentCeilingMs() const;
  // After a healthy session: start again from the base.
  void Reset() { attempt_ = 0; }
  // For failures that will not heal soon (wrong key): jump straight to the cap.
  void JumpToCap();
  // Uniform in [0, bound_ms); 0 when bound_ms <= 0. Shares the generator.
  int64_t UniformMs(int64_t bound_ms);

 private:
  BackoffPolicy policy_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace camtunnel::agent
