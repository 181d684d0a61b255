// A clock finer than the timer wheel's 10 ms ticks: calls `tick` every `period_us` from a ring
// timeout. The load driver issues snapshot opens with it, one at a time at their rate (500/s is
// one every 2 ms), instead of a tick's worth at once every 10 ms: a rate of opens is measured
// with the opens spread over time, not in bursts the generator made.
//
// Lifetime like runtime::SplicePump: Create, then Stop() once, before the shard shuts down (a
// shutdown stops it too, and frees it: its owner must not touch it after that); the pacer
// frees itself once its last timeout has completed (the kernel reads the timespec only at
// submission, and a pacer gone before then would leave it dangling).
#pragma once

#include <liburing.h>

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "runtime/shard.h"

namespace camtunnel::agentsim {

class Pacer final : public runtime::IoObject {
 public:
  static Pacer* Create(runtime::Shard& shard, uint64_t period_us, absl::AnyInvocable<void()> tick);
  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;

  // Takes effect from the next tick.
  void set_period_us(uint64_t period_us);
  // No tick after this; the pacer frees itself.
  void Stop();

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override { Stop(); }

 private:
  enum Op : uint8_t { kTimeout = 1, kRemove = 2 };

  Pacer(runtime::Shard& shard, uint64_t period_us, absl::AnyInvocable<void()> tick);
  ~Pacer() = default;
  void Arm();
  void MaybeFree();

  runtime::Shard& shard_;
  absl::AnyInvocable<void()> tick_;
  uint32_t slot_;
  __kernel_timespec timeout_{};
  uint8_t in_flight_ = 0;
  bool stopped_ = false;
};

}  // namespace camtunnel::agentsim
