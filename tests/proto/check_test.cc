#include "proto/check.h"

#include <gtest/gtest.h>

namespace {

TEST(CheckTest, PassingCheckDoesNothing) {
  int evaluated = 0;
  CT_CHECK(++evaluated == 1);
  EXPECT_EQ(evaluated, 1);
}

TEST(CheckDeathTest, FailingCheckNamesFileLineAndCondition) {
  const int in_flight = 2;
  EXPECT_DEATH(CT_CHECK(in_flight == 0), "check_test\\.cc:[0-9]+: check failed: in_flight == 0");
}

TEST(CheckDeathTest, FatalNamesFileLineAndReason) {
  EXPECT_DEATH(CT_FATAL("frame field over 65535 bytes"),
               "check_test\\.cc:[0-9]+: fatal: frame field over 65535 bytes");
}

#ifdef NDEBUG
TEST(CheckTest, DebugCheckIsNotEvaluatedInRelease) {
  int evaluated = 0;
  CT_DCHECK(++evaluated == 0);  // NOLINT(bugprone-assert-side-effect): what this test checks
  EXPECT_EQ(evaluated, 0);
}
#else
TEST(CheckDeathTest, DebugCheckAbortsInDebugBuilds) {
  EXPECT_DEATH(CT_DCHECK(1 + 1 == 3), "check failed: 1 \\+ 1 == 3");
}
#endif

}  // namespace
