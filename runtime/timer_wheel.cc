#include "runtime/timer_wheel.h"

namespace camtunnel::runtime {

Timer::~Timer() {
  if (wheel_ != nullptr) {
    wheel_->Cancel(*this);
  }
}

TimerWheel::TimerWheel(uint64_t now_ms)
    : slots_(kSlots, nullptr), current_tick_(now_ms / kTickMs) {}

void TimerWheel::Link(Timer& t) {
  Timer*& head = slots_[t.expire_tick_ % kSlots];
  t.prev_ = nullptr;
  t.next_ = head;
  if (head != nullptr) {
    head->prev_ = &t;
  }
  head = &t;
  ++armed_;
}

void TimerWheel::Unlink(Timer& t) {
  if (t.prev_ != nullptr) {
    t.prev_->next_ = t.next_;
  } else {
    slots_[t.expire_tick_ % kSlots] = t.next_;
  }
  if (t.next_ != nullptr) {
    t.next_->prev_ = t.prev_;
  }
  t.prev_ = t.next_ = nullptr;
  t.wheel_ = nullptr;
  --armed_;
}

void TimerWheel::Arm(Timer& t, uint64_t now_ms, uint64_t delay_ms) {
  if (t.wheel_ != nullptr) {
    t.wheel_->Cancel(t);
  }
  uint64_t tick = (now_ms + delay_ms + kTickMs - 1) / kTickMs;
  // A timer is never placed in a tick that was already processed, or it would wait a full round.
  if (tick <= current_tick_) {
    tick = current_tick_ + 1;
  }
  t.expire_tick_ = tick;
  t.wheel_ = this;
  Link(t);
}

void TimerWheel::Cancel(Timer& t) {
  if (t.wheel_ == this) {
    Unlink(t);
  }
}

void TimerWheel::Advance(uint64_t now_ms) {
  const uint64_t target = now_ms / kTickMs;
  if (target <= current_tick_) {
    return;
  }
  // After a long stall every slot is visited once; entries due later stay where they are.
  const uint64_t steps = target - current_tick_ < kSlots ? target - current_tick_ : kSlots;
  const uint64_t base = target - steps;
  for (uint64_t i = 1; i <= steps; ++i) {
    // Advancing before the callbacks run means a timer re-armed from one lands in a later tick.
    current_tick_ = base + i;
    const size_t slot = current_tick_ % kSlots;
    Timer* t = slots_[slot];
    while (t != nullptr) {
      Timer* next = t->next_;
      if (t->expire_tick_ <= target) {
        Unlink(*t);
        if (t->fn_) {
          // The callback may re-arm or cancel any timer, including `next`: rescan this slot.
          t->fn_();
          next = slots_[slot];
        }
      }
      t = next;
    }
  }
}

uint64_t TimerWheel::MsUntilNext(uint64_t now_ms, uint64_t cap_ms) const {
  if (armed_ == 0) {
    return cap_ms;
  }
  const uint64_t now_tick = now_ms / kTickMs;
  const uint64_t max_steps = cap_ms / kTickMs;
  for (uint64_t i = 1; i <= max_steps && i <= kSlots; ++i) {
    if (slots_[(now_tick + i) % kSlots] != nullptr) {
      const uint64_t due_ms = (now_tick + i) * kTickMs;
      return due_ms > now_ms ? due_ms - now_ms : 0;
    }
  }
  return cap_ms;
}

}  // namespace camtunnel::runtime
