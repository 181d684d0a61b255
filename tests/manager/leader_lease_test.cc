// Leadership of the once-only work between two managers on one database (a SQLite file here;
// the lease's SQL on PostgreSQL is in the store suite, the whole of it end to end in
// agentsim_e2e's SeveralManagersTest): one leader at a time, a clean release hands over at the
// other's next renewal, and a leader that was stopped past its lease is fenced out by the
// database even while its own clock has not caught up.
#include "manager/leader_lease.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/manager/test_store.h"

namespace camtunnel::manager {
namespace {

constexpr uint64_t kTtlMs = 600;

class LeaderLeaseTest : public ::testing::Test {
 protected:
  static std::string Spec() {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() /
        absl::StrCat("camtunnel-lease-", getpid(), "-",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return absl::StrCat("sqlite:", (dir / "state.db").string());
  }

  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::path(spec_.substr(7)).parent_path());
  }

  // Each manager's store on its own shard, driven by the test: one not driven is a stopped
  // process.
  std::string spec_ = Spec();
  test_util::TestStore a_{spec_};
  test_util::TestStore b_{spec_};
  LeaderLease lease_a_{a_.shard(), a_.store(), "leader", "m-a", kTtlMs};
  LeaderLease lease_b_{b_.shard(), b_.store(), "leader", "m-b", kTtlMs};
};

TEST_F(LeaderLeaseTest, OneLeaderAtATimeAndACleanReleaseHandsOver) {
  std::vector<bool> changes;
  lease_a_.set_on_change([&](bool leading) { changes.push_back(leading); });
  lease_a_.Start();
  ASSERT_TRUE(a_.RunUntil([&] { return lease_a_.leading(); }));
  EXPECT_EQ(lease_a_.term(), 1);
  lease_b_.Start();
  ASSERT_TRUE(b_.RunUntil([&] { return lease_b_.holder() == "m-a"; }));
  EXPECT_FALSE(lease_b_.leading());
  // Several renewals later, still the same leader and term.
  for (int i = 0; i < 3; ++i) {
    a_.shard().RunUntil([] { return false; }, kTtlMs / 2);
    b_.shard().RunUntil([] { return false; }, 10);
  }
  EXPECT_TRUE(lease_a_.leading());
  EXPECT_FALSE(lease_b_.leading());
  // A clean shutdown lets go at once: the other takes over at its next renewal, next term.
  lease_a_.Release();
  EXPECT_FALSE(lease_a_.leading());
  ASSERT_TRUE(a_.RunUntil([&] { return a_->pending() == 0; }));
  ASSERT_TRUE(b_.RunUntil([&] { return lease_b_.leading(); }));
  EXPECT_EQ(lease_b_.term(), 2);
  EXPECT_EQ(changes, (std::vector<bool>{true, false}));
  EXPECT_EQ(lease_a_.counters().gained, 1u);
  EXPECT_EQ(lease_a_.counters().lost, 1u);
}

TEST_F(LeaderLeaseTest, AStoppedLeaderIsFencedOutByTheDatabase) {
  lease_a_.Start();
  ASSERT_TRUE(a_.RunUntil([&] { return lease_a_.leading(); }));
  lease_b_.Start();
  // Manager A stops (its shard is not run); its lease runs out and B takes it.
  ASSERT_TRUE(b_.RunUntil([&] { return lease_b_.leading(); }));
  EXPECT_EQ(lease_b_.term(), 2);
  // A's clock has not moved (it was stopped): it still believes it leads, so its next write
  // reaches the database, which refuses it, and A gives up at once.
  ASSERT_TRUE(lease_a_.leading());
  std::optional<absl::Status> result;
  lease_a_.Fenced(
      "health", [](StoreConnection& c) { return c.SetStreamerHealth("https://gw-1", false, 1); },
      [&](const absl::Status& st) { result = st; });
  ASSERT_TRUE(a_.RunUntil([&] { return result.has_value(); }));
  EXPECT_TRUE(absl::IsFailedPrecondition(*result)) << *result;
  EXPECT_FALSE(lease_a_.leading());
  EXPECT_EQ(lease_a_.counters().fenced_out, 1u);
  using HealthRows = absl::StatusOr<std::map<std::string, bool>>;
  HealthRows rows = a_.Sync<HealthRows>([](StoreConnection& c) { return c.ListStreamerHealth(); });
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_TRUE(rows->empty());
  // The leader's own write goes through.
  result.reset();
  lease_b_.Fenced(
      "health", [](StoreConnection& c) { return c.SetStreamerHealth("https://gw-1", false, 1); },
      [&](const absl::Status& st) { result = st; });
  ASSERT_TRUE(b_.RunUntil([&] { return result.has_value(); }));
  EXPECT_TRUE(result->ok()) << *result;
  // A, run again, asks at once and learns who leads now.
  ASSERT_TRUE(a_.RunUntil([&] { return lease_a_.holder() == "m-b"; }));
  EXPECT_FALSE(lease_a_.leading());
}

}  // namespace
}  // namespace camtunnel::manager
