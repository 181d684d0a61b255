// The admin API's remembered totals: a first page always counts, later pages of the same filters
// reuse a fresh count, other filters and stale counts do not.
#include "manager/agent_totals.h"

#include <gtest/gtest.h>

namespace camtunnel::manager {
namespace {

TEST(AgentTotalsTest, PagesReuseAFreshCountOfTheSameFiltersOnly) {
  AgentTotals totals;
  AgentQuery first{.operator_id = "acme"};
  totals.Remember(first, 42, 1000);
  EXPECT_FALSE(totals.Find(first, 1000).has_value());  // a first page counts afresh
  AgentQuery next = first;
  next.after = "sn-100";
  EXPECT_EQ(totals.Find(next, 1000 + AgentTotals::kMaxAgeMs), 42u);
  EXPECT_FALSE(totals.Find(next, 1001 + AgentTotals::kMaxAgeMs).has_value());  // stale
  AgentQuery other = next;
  other.state = AgentState::kDeactivated;
  EXPECT_FALSE(totals.Find(other, 1000).has_value());
  AgentQuery online = next;
  online.seen_since_ms = 5;
  EXPECT_FALSE(totals.Find(online, 1000).has_value());
}

TEST(AgentTotalsTest, StaysBoundedUnderManyFilters) {
  AgentTotals totals;
  for (size_t i = 0; i < 3 * AgentTotals::kMaxFilters; ++i) {
    totals.Remember(AgentQuery{.operator_id = std::to_string(i)}, i, 0);
  }
  AgentQuery last{.after = "x", .operator_id = std::to_string(3 * AgentTotals::kMaxFilters - 1)};
  EXPECT_EQ(totals.Find(last, 0), 3 * AgentTotals::kMaxFilters - 1);
  AgentQuery first{.after = "x", .operator_id = "0"};
  EXPECT_FALSE(totals.Find(first, 0).has_value());
}

}  // namespace
}  // namespace camtunnel::manager
