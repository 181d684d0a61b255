// Retention: the leader deletes history past the retention period, in batches until none is
// left, and keeps what is newer; a manager that does not lead deletes nothing.
#include "manager/history_retention.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/clock.h"
#include "tests/manager/test_store.h"

namespace camtunnel::manager {
namespace {

constexpr uint64_t kDayMs = uint64_t{24} * 3600 * 1000;

class HistoryRetentionTest : public ::testing::Test {
 protected:
  // 2 * kBatch + 1 rows of old audit (three batches), and one recent row of each kind.
  void SetUp() override {
    const int64_t now = static_cast<int64_t>(runtime::WallMs());
    ASSERT_TRUE(store_
                    .Sync<absl::Status>([now](StoreConnection& c) {
                      return c.Transaction([&]() -> absl::Status {
                        for (size_t i = 0; i < 2 * HistoryRetention::kBatch + 1; ++i) {
                          if (absl::Status st = c.Audit({.at_ms = 1000, .actor = "old"});
                              !st.ok()) {
                            return st;
                          }
                        }
                        if (absl::Status st = c.Audit({.at_ms = now, .actor = "new"}); !st.ok()) {
                          return st;
                        }
                        return c.RecordActivation({.serial = "sn", .at_ms = now});
                      });
                    })
                    .ok());
  }

  std::vector<AuditEntry> Audit() {
    return *store_.Sync<absl::StatusOr<std::vector<AuditEntry>>>(
        [](StoreConnection& c) { return c.ListAudit(0, 100000); });
  }

  test_util::TestStore store_;
  LeaderLease lease_{store_.shard(), store_.store(), "leader", "m-a", 10000};
};

TEST_F(HistoryRetentionTest, TheLeaderPrunesOldHistoryInBatchesAndKeepsTheRest) {
  HistoryRetention retention(store_.shard(), lease_, 30 * kDayMs, 20);
  lease_.Start();
  retention.Start();
  ASSERT_TRUE(
      store_.RunUntil([&] { return retention.pruned() == 2 * HistoryRetention::kBatch + 1; }));
  const std::vector<AuditEntry> left = Audit();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].actor, "new");
  EXPECT_EQ(store_
                .Sync<absl::StatusOr<std::vector<ActivationEntry>>>(
                    [](StoreConnection& c) { return c.ListActivations(0, 10); })
                ->size(),
            1u);
  EXPECT_EQ(retention.failures(), 0u);
}

TEST_F(HistoryRetentionTest, NothingIsPrunedWithoutTheLeaseOrWithRetentionOff) {
  // Another manager leads.
  ASSERT_TRUE(store_
                  .Sync<absl::StatusOr<Lease>>(
                      [](StoreConnection& c) { return c.AcquireLease("leader", "m-b", 60000); })
                  ->held);
  HistoryRetention retention(store_.shard(), lease_, 30 * kDayMs, 20);
  HistoryRetention off(store_.shard(), lease_, 0, 20);
  lease_.Start();
  retention.Start();
  off.Start();
  ASSERT_TRUE(store_.RunUntil([&] { return lease_.holder() == "m-b"; }));
  store_.shard().RunUntil([] { return false; }, 200);
  EXPECT_EQ(retention.pruned(), 0u);
  EXPECT_EQ(Audit().size(), 2 * HistoryRetention::kBatch + 2);
}

}  // namespace
}  // namespace camtunnel::manager
