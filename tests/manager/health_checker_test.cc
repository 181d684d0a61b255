// Streamer health hysteresis: one failed check takes a Streamer out at once, kRise successes in
// a row bring it back (a flapping node stays out), and every failed check is reported so the
// manager can keep moving its agents off it. Report() is driven directly: the probes themselves
// are covered end to end (tests/e2e/lifecycle, Failover).
#include "manager/health_checker.h"

#include <gtest/gtest.h>

#include <vector>

namespace camtunnel::manager {
namespace {

class HealthCheckerTest : public ::testing::Test {
 protected:
  HealthCheckerTest()
      : pool_({{.url = "https://a", .key_id = "k1", .streamer_key = std::vector<uint8_t>(32, 1)},
               {.url = "https://b", .key_id = "k1", .streamer_key = std::vector<uint8_t>(32, 2)}},
              3600),
        checker_(shard_, pool_, 1000, 500) {
    checker_.set_on_healthy([this](size_t i) { healthy_calls_.push_back(i); });
    checker_.set_on_unhealthy([this](size_t i) { unhealthy_calls_.push_back(i); });
  }

  runtime::Shard shard_;  // never started: Report() needs no ring
  StreamerPool pool_;
  HealthChecker checker_;
  std::vector<size_t> healthy_calls_;
  std::vector<size_t> unhealthy_calls_;
};

TEST_F(HealthCheckerTest, OneFailedCheckMakesAStreamerUnhealthyAtOnce) {
  checker_.Report(0, false);
  EXPECT_FALSE(pool_.healthy(0));
  EXPECT_TRUE(pool_.healthy(1));
  EXPECT_EQ(unhealthy_calls_, std::vector<size_t>{0});
}

TEST_F(HealthCheckerTest, HealthyAgainOnlyAfterRiseSuccessesInARow) {
  checker_.Report(0, false);
  for (uint32_t i = 1; i < HealthChecker::kRise; ++i) {
    checker_.Report(0, true);
    EXPECT_FALSE(pool_.healthy(0)) << i;
  }
  checker_.Report(0, true);
  EXPECT_TRUE(pool_.healthy(0));
  EXPECT_EQ(healthy_calls_, std::vector<size_t>{0});
  EXPECT_EQ(checker_.counters().transitions, 2u);
}

TEST_F(HealthCheckerTest, AFlappingStreamerStaysOut) {
  for (int i = 0; i < 10; ++i) {
    checker_.Report(0, i % 2 == 0);  // answers every other probe
  }
  EXPECT_FALSE(pool_.healthy(0));
  EXPECT_TRUE(healthy_calls_.empty());
  EXPECT_EQ(checker_.counters().transitions, 1u);
  // Every failed check is reported (the manager paces its moves over them).
  EXPECT_EQ(unhealthy_calls_.size(), 5u);
}

TEST_F(HealthCheckerTest, OnlyTheLeaderJudgesAndANewOneStartsFromThePool) {
  bool leading = false;
  checker_.set_active([&] { return leading; });
  checker_.Report(0, false);  // a probe that ended after leadership did
  EXPECT_TRUE(pool_.healthy(0));
  EXPECT_TRUE(unhealthy_calls_.empty());
  // The last leader left Streamer 1 unhealthy: one success does not bring it back.
  pool_.SetHealthy(1, false);
  leading = true;
  checker_.Resume();
  checker_.Report(1, true);
  EXPECT_FALSE(pool_.healthy(1));
  checker_.Report(0, false);
  EXPECT_FALSE(pool_.healthy(0));
}

}  // namespace
}  // namespace camtunnel::manager
