// Reconnect backoff: full jitter bounds, doubling, cap, reset.
#include "agent/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace camtunnel::agent {
namespace {

TEST(BackoffTest, DelaysStayWithinFullJitterCeilingThatDoubles) {
  Backoff backoff({.base_ms = 500, .cap_ms = 30000}, 1);
  const int64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (int64_t ceiling : expected) {
    EXPECT_EQ(backoff.CurrentCeilingMs(), ceiling);
    int64_t delay = backoff.NextDelayMs();
    EXPECT_GE(delay, 0);
    EXPECT_LT(delay, ceiling);
  }
}

TEST(BackoffTest, JitterCoversTheWholeRangeAndNeverReachesCeiling) {
  Backoff backoff({.base_ms = 500, .cap_ms = 1000}, 42);
  backoff.JumpToCap();
  int64_t lo = 1 << 30;
  int64_t hi = -1;
  for (int i = 0; i < 5000; ++i) {
    int64_t d = backoff.NextDelayMs();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GE(lo, 0);
  EXPECT_LT(lo, 50);  // full jitter: near-zero delays happen
  EXPECT_LT(hi, 1000);
  EXPECT_GT(hi, 950);
}

TEST(BackoffTest, JumpToCapAndResetMoveTheCeiling) {
  Backoff backoff({.base_ms = 500, .cap_ms = 30000}, 7);
  backoff.JumpToCap();
  EXPECT_EQ(backoff.CurrentCeilingMs(), 30000);
  backoff.NextDelayMs();
  EXPECT_EQ(backoff.CurrentCeilingMs(), 30000);  // stays at the cap
  backoff.Reset();
  EXPECT_EQ(backoff.CurrentCeilingMs(), 500);
  EXPECT_LT(backoff.NextDelayMs(), 500);
}

TEST(BackoffTest, CapBelowBaseWins) {
  Backoff backoff({.base_ms = 500, .cap_ms = 200}, 3);
  for (int i = 0; i < 100; ++i) {
    EXPECT_LT(backoff.NextDelayMs(), 200);
  }
}

TEST(BackoffTest, UniformHandlesEmptyWindow) {
  Backoff backoff({}, 9);
  EXPECT_EQ(backoff.UniformMs(0), 0);
  EXPECT_EQ(backoff.UniformMs(-5), 0);
  EXPECT_EQ(backoff.UniformMs(1), 0);
  for (int i = 0; i < 1000; ++i) {
    int64_t v = backoff.UniformMs(10);
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 10);
  }
}

TEST(BackoffTest, SameSeedSameSequenceDifferentSeedDiffers) {
  Backoff a({}, 5);
  Backoff b({}, 5);
  Backoff c({}, 6);
  bool differs = false;
  for (int i = 0; i < 20; ++i) {
    int64_t x = a.NextDelayMs();
    EXPECT_EQ(x, b.NextDelayMs());
    differs |= x != c.NextDelayMs();
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace camtunnel::agent
