// Hashed timer wheel: one per shard, so thousands of connection deadlines cost no kernel timers.
// Resolution kTickMs; a timer is an intrusive node owned by its user (no allocation to arm).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace camtunnel::runtime {

class TimerWheel;

class Timer {
 public:
  Timer() = default;
  explicit Timer(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void set_callback(std::function<void()> fn) { fn_ = std::move(fn); }
  bool armed() const { return wheel_ != nullptr; }

 private:
  friend class TimerWheel;
  TimerWheel* wheel_ = nullptr;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  uint64_t expire_tick_ = 0;
  std::function<void()> fn_;
};

class TimerWheel {
 public:
  static constexpr uint64_t kTickMs = 10;
  static constexpr size_t kSlots = 512;

  explicit TimerWheel(uint64_t now_ms);

  // (Re)arms `t` to fire `delay_ms` from `now_ms` (rounded up to the next tick).
  void Arm(Timer& t, uint64_t now_ms, uint64_t delay_ms);
  void Cancel(Timer& t);
  // Fires every timer due at `now_ms`. Callbacks may arm or cancel timers, including themselves.
  void Advance(uint64_t now_ms);
  // Milliseconds until the earliest armed timer may be due, capped at `cap_ms`.
  uint64_t MsUntilNext(uint64_t now_ms, uint64_t cap_ms) const;
  size_t armed_count() const { return armed_; }

 private:
  void Link(Timer& t);
  void Unlink(Timer& t);

  std::vector<Timer*> slots_;  // heads of intrusive lists
  uint64_t current_tick_;      // every tick <= current_tick_ has been processed
  size_t armed_ = 0;
};

}  // namespace camtunnel::runtime
