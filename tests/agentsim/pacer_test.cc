// Pacer on a real io_uring: ticks at its period (finer than the timer wheel's 10 ms), a new
// period takes effect, and a pacer stopped from its own tick ticks no more and frees itself
// (the sanitizer build checks the memory).
#include "agentsim/pacer.h"

#include <gtest/gtest.h>

#include "runtime/clock.h"
#include "runtime/shard.h"

namespace camtunnel::agentsim {
namespace {

TEST(PacerTest, TicksAtItsPeriodAndStopsFromItsOwnTick) {
  runtime::Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  int ticks = 0;
  Pacer* pacer = nullptr;
  pacer = Pacer::Create(shard, 2000, [&] {
    if (++ticks == 20) {
      pacer->Stop();
    }
  });
  const uint64_t start = runtime::MonotonicNs();
  shard.RunUntil([&] { return ticks >= 20; }, 5000);
  const double elapsed_ms = static_cast<double>(runtime::MonotonicNs() - start) / 1e6;
  ASSERT_EQ(ticks, 20);
  // 20 periods of 2 ms: at least 40 ms; well under twenty 10 ms wheel ticks.
  EXPECT_GE(elapsed_ms, 39.0);
  EXPECT_LT(elapsed_ms, 190.0);
  shard.RunUntil([] { return false; }, 30);
  EXPECT_EQ(ticks, 20) << "ticked after Stop()";
  EXPECT_EQ(shard.Shutdown(1000), 0u);
}

TEST(PacerTest, ANewPeriodTakesEffectAndShutdownStopsIt) {
  runtime::Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  int ticks = 0;
  Pacer* pacer = Pacer::Create(shard, 50000, [&] { ++ticks; });
  shard.RunUntil([] { return false; }, 20);
  EXPECT_EQ(ticks, 0);  // the first 50 ms have not passed
  pacer->set_period_us(1000);
  shard.RunUntil([&] { return ticks >= 5; }, 1000);  // the pending 50 ms one, then 1 ms ones
  EXPECT_GE(ticks, 5);
  EXPECT_EQ(shard.Shutdown(1000), 0u);  // OnShutdown stops it; nothing leaks
}

}  // namespace
}  // namespace camtunnel::agentsim
