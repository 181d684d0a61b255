// The time certificates are checked against: max(clock, build time, last known good time).
#include "agent/cert_time.h"

#include <gtest/gtest.h>

#include <ctime>

namespace camtunnel::agent {
namespace {

constexpr int64_t kBuild = 1764547200;  // 2025-12-01

TEST(CertTimeTest, ClockAt1970UsesTheBuildTime) {
  EXPECT_EQ(CertificateCheckTime(0, kBuild, 0), kBuild);
  EXPECT_EQ(CertificateCheckTime(86400, kBuild, 0), kBuild);
}

TEST(CertTimeTest, LastGoodTimeLaterThanBuildAndClockWins) {
  EXPECT_EQ(CertificateCheckTime(10, kBuild, kBuild + 3600), kBuild + 3600);
}

TEST(CertTimeTest, ASetClockAheadOfBothIsUsed) {
  EXPECT_EQ(CertificateCheckTime(kBuild + 7200, kBuild, kBuild + 3600), kBuild + 7200);
}

TEST(CertTimeTest, NothingKnownIsZeroNeverNegative) {
  EXPECT_EQ(CertificateCheckTime(-5, 0, 0), 0);
}

TEST(CertTimeTest, BuildTimeComesFromTheBuildAndIsNotInTheFuture) {
  // 2025-01-01 <= build time <= now: the compile definition is wired and plausible.
  EXPECT_GE(BuildTimeUnixS(), 1735689600);
  EXPECT_LE(BuildTimeUnixS(), static_cast<int64_t>(std::time(nullptr)));
}

}  // namespace
}  // namespace camtunnel::agent
