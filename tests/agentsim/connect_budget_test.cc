// The --connect_rate token bucket: the rate, no burst after a pause, 0 unlimited.
#include "agentsim/connect_budget.h"

#include <gtest/gtest.h>

namespace camtunnel::agentsim {
namespace {

int TakeAll(ConnectBudget& b, double rate, uint64_t now) {
  int n = 0;
  while (n < 1000 && b.Take(rate, now)) {
    ++n;
  }
  return n;
}

TEST(ConnectBudget, StartsEmptyAndRefillsAtTheRate) {
  ConnectBudget b;
  b.Start(1000);
  EXPECT_EQ(TakeAll(b, 10, 1000), 0);
  EXPECT_EQ(TakeAll(b, 10, 1100), 1);  // 100 ms at 10/s
  EXPECT_EQ(TakeAll(b, 10, 1350), 2);  // 250 ms more: 2.5, half a token kept
  EXPECT_EQ(TakeAll(b, 10, 1400), 1);
}

TEST(ConnectBudget, APauseCarriesAtMostOneSecond) {
  ConnectBudget b;
  b.Start(0);
  EXPECT_EQ(TakeAll(b, 10, 60000), 10);
  EXPECT_EQ(TakeAll(b, 0.5, 120000), 1);  // below 1/s: one token at most
}

TEST(ConnectBudget, ZeroIsUnlimited) {
  ConnectBudget b;
  EXPECT_EQ(TakeAll(b, 0, 0), 1000);
}

}  // namespace
}  // namespace camtunnel::agentsim
