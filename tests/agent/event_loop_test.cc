// The poll loop: timer order and cancellation, re-entrant removal, level-triggered watches,
// and a thread-safe stop.
#include "agent/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace camtunnel::agent {
namespace {

TEST(EventLoopTest, TimersFireInDeadlineOrderAndCancelledOnesNever) {
  EventLoop loop;
  std::string order;
  loop.AddTimer(30, [&] { order += "c"; });
  loop.AddTimer(10, [&] { order += "a"; });
  auto cancelled = loop.AddTimer(20, [&] { order += "x"; });
  loop.AddTimer(20, [&] { order += "b"; });
  loop.AddTimer(40, [&] { loop.Stop(); });
  loop.CancelTimer(cancelled);
  ASSERT_EQ(loop.Run(), 0);
  EXPECT_EQ(order, "abc");
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST(EventLoopTest, TimerOwnerMayDestroyItselfFromItsCallback) {
  EventLoop loop;
  auto timer = std::make_unique<Timer>();
  bool fired = false;
  timer->Start(loop, 0, [&] {
    fired = true;
    timer.reset();  // destroys the Timer whose callback is running
    loop.Stop();
  });
  ASSERT_EQ(loop.Run(), 0);
  EXPECT_TRUE(fired);
  EXPECT_EQ(loop.timer_count(), 0u);
}

TEST(EventLoopTest, WatchRemovedByAnEarlierCallbackGetsNoEvent) {
  EventLoop loop;
  int a[2];
  int b[2];
  ASSERT_EQ(pipe(a), 0);
  ASSERT_EQ(pipe(b), 0);
  ASSERT_EQ(write(a[1], "x", 1), 1);
  ASSERT_EQ(write(b[1], "x", 1), 1);
  int calls = 0;
  // Whichever fires first removes the other; the other must not run in the same iteration.
  loop.Watch(a[0], POLLIN, [&](short) {
    ++calls;
    loop.Unwatch(b[0]);
    loop.Unwatch(a[0]);
  });
  loop.Watch(b[0], POLLIN, [&](short) {
    ++calls;
    loop.Unwatch(a[0]);
    loop.Unwatch(b[0]);
  });
  loop.AddTimer(50, [&] { loop.Stop(); });
  ASSERT_EQ(loop.Run(), 0);
  EXPECT_EQ(calls, 1);
  for (int fd : {a[0], a[1], b[0], b[1]}) {
    close(fd);
  }
}

TEST(EventLoopTest, ZeroInterestIsNotPolledEvenOnHangup) {
  EventLoop loop;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[1]);  // p[0] now reports POLLHUP forever
  int calls = 0;
  loop.Watch(p[0], 0, [&](short) { ++calls; });
  loop.AddTimer(30, [&] { loop.SetEvents(p[0], POLLIN); });
  loop.AddTimer(60, [&] { loop.Stop(); });
  ASSERT_EQ(loop.Run(), 0);
  EXPECT_GT(calls, 0);  // reported once interest was set...
  loop.SetEvents(p[0], 0);
  calls = 0;
  loop.AddTimer(30, [&] { loop.Stop(); });
  ASSERT_EQ(loop.Run(), 0);
  EXPECT_EQ(calls, 0);  // ...and not while paused
  loop.Unwatch(p[0]);
  close(p[0]);
}

TEST(EventLoopTest, RequestStopFromAnotherThreadEndsRun) {
  EventLoop loop;
  std::thread stopper([&] { loop.RequestStop(); });
  EXPECT_EQ(loop.Run(), 0);  // returns even with no timers and no other watches
  stopper.join();
}

}  // namespace
}  // namespace camtunnel::agent
