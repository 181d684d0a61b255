#include "runtime/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace camtunnel::runtime {
namespace {

TEST(TimerWheelTest, FiresWhenDueAndNotBefore) {
  TimerWheel wheel(1000);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.Arm(t, 1000, 50);
  wheel.Advance(1040);
  EXPECT_EQ(fired, 0);
  wheel.Advance(1050);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.armed());
}

TEST(TimerWheelTest, FiresInDeadlineOrderAcrossRounds) {
  TimerWheel wheel(0);
  std::vector<int> order;
  Timer a([&] { order.push_back(1); });
  Timer b([&] { order.push_back(2); });
  Timer c([&] { order.push_back(3); });
  // c is more than one wheel round away: it must not fire on the first pass over its slot.
  wheel.Arm(c, 0, TimerWheel::kSlots * TimerWheel::kTickMs + 30);
  wheel.Arm(b, 0, 200);
  wheel.Arm(a, 0, 100);
  for (uint64_t now = 0; now <= 2 * TimerWheel::kSlots * TimerWheel::kTickMs; now += 10) {
    wheel.Advance(now);
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerWheelTest, CancelledTimerNeverFires) {
  TimerWheel wheel(0);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.Arm(t, 0, 20);
  wheel.Cancel(t);
  wheel.Advance(1000);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(wheel.armed_count(), 0u);
}

TEST(TimerWheelTest, CallbackMayRearmItself) {
  TimerWheel wheel(0);
  int fired = 0;
  Timer t;
  t.set_callback([&] {
    if (++fired < 3) {
      wheel.Arm(t, 0, 0);
    }
  });
  wheel.Arm(t, 0, 10);
  for (uint64_t now = 10; now <= 100; now += 10) {
    wheel.Advance(now);
  }
  EXPECT_EQ(fired, 3);
}

TEST(TimerWheelTest, LongStallFiresEverythingDue) {
  TimerWheel wheel(0);
  int fired = 0;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 100; ++i) {
    timers.push_back(std::make_unique<Timer>([&] { ++fired; }));
    wheel.Arm(*timers.back(), 0, static_cast<uint64_t>(i) * 97);
  }
  wheel.Advance(1'000'000);  // a stall of many rounds
  EXPECT_EQ(fired, 100);
}

TEST(TimerWheelTest, DestroyingAnArmedTimerUnlinksIt) {
  TimerWheel wheel(0);
  {
    Timer t([] { FAIL() << "destroyed timer fired"; });
    wheel.Arm(t, 0, 10);
  }
  EXPECT_EQ(wheel.armed_count(), 0u);
  wheel.Advance(100);
}

TEST(TimerWheelTest, ReportsTimeUntilNextDeadline) {
  TimerWheel wheel(0);
  Timer t([] {});
  EXPECT_EQ(wheel.MsUntilNext(0, 1000), 1000u);
  wheel.Arm(t, 0, 250);
  EXPECT_EQ(wheel.MsUntilNext(0, 1000), 250u);
  EXPECT_EQ(wheel.MsUntilNext(0, 100), 100u);
}

}  // namespace
}  // namespace camtunnel::runtime
