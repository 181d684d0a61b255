#include "agentsim/live_status.h"

#include <gtest/gtest.h>

namespace camtunnel::agentsim {
namespace {

TEST(LiveStatusTest, StatusLineRoundTrips) {
  const LiveStatus s{
      .up = 7, .agents = 9, .streams = 3, .opens = 12, .errors = 1, .bytes = 1 << 30};
  const auto p = ParseStatusLine(FormatStatusLine(s));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->up, 7u);
  EXPECT_EQ(p->agents, 9u);
  EXPECT_EQ(p->streams, 3u);
  EXPECT_EQ(p->opens, 12u);
  EXPECT_EQ(p->errors, 1u);
  EXPECT_EQ(p->bytes, uint64_t{1} << 30);
}

TEST(LiveStatusTest, OtherLinesAreNotStatus) {
  EXPECT_FALSE(ParseStatusLine("agentsim: load-done 3.0 s").has_value());
  EXPECT_FALSE(ParseStatusLine("agentsim: status up=1 agents=2").has_value());
  EXPECT_FALSE(ParseStatusLine("agentsim: status up=x agents=2 streams=0 opens=0 errors=0 "
                               "bytes=0")
                   .has_value());
}

TEST(LiveStatusTest, SumAddsEveryField) {
  LiveStatus a{.up = 1, .agents = 2, .streams = 3, .opens = 4, .errors = 5, .bytes = 6};
  a += a;
  EXPECT_EQ(a.up, 2u);
  EXPECT_EQ(a.bytes, 12u);
}

}  // namespace
}  // namespace camtunnel::agentsim
