// Pacer on a real io_uring: ticks at its period (finer than the timer wheel's 10 ms), a new
// period takes effect, and a pacer stopped from its own tick ticks no more and frees itself
// (the sanitizer build checks the memory).
#include "agentsim/pacer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/clock.h"
#include "runtime/shard.h"

namespace camtunnel::agentsim {
namespace {

TEST(PacerTest, TicksAtItsPeriodAndStopsFromItsOwnTick) {
  runtime::Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  int ticks = 0;
  std::vector<uint64_t> tick_ns;
  Pacer* pacer = nullptr;
  pacer = Pacer::Create(shard, 2000, [&] {
    tick_ns.push_back(runtime::MonotonicNs());
    if (++ticks == 20) {
      pacer->Stop();
    }
  });
  const uint64_t start = runtime::MonotonicNs();
  shard.RunUntil([&] { return ticks >= 20; }, 5000);
  const double elapsed_ms = static_cast<double>(runtime::MonotonicNs() - start) / 1e6;
  ASSERT_EQ(ticks, 20);
  // 20 periods of 2 ms: at least 40 ms.
  EXPECT_GE(elapsed_ms, 39.0);
  // Finer than the timer wheel's 10 ms tick, which would issue them in bursts (gaps of 0, then
  // 10 ms): the typical gap is about one period. The median, not the total, so that a busy
  // machine running this process late now and then does not count.
  std::vector<double> gaps_ms;
  for (size_t i = 1; i < tick_ns.size(); ++i) {
    gaps_ms.push_back(static_cast<double>(tick_ns[i] - tick_ns[i - 1]) / 1e6);
  }
  std::sort(gaps_ms.begin(), gaps_ms.end());
  const double median_gap_ms = gaps_ms[gaps_ms.size() / 2];
  EXPECT_GE(median_gap_ms, 1.9);
  EXPECT_LT(median_gap_ms, 6.0);
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
