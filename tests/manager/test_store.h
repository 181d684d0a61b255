// A manager Store (manager/store.h) for tests, with blocking accessors that keep test bodies
// short: each runs on a store worker and waits (tests only; the manager never waits on its
// ring). Owns a shard unless given one, for the Store's results to arrive on.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manager/store.h"
#include "runtime/shard.h"

namespace camtunnel::manager::test_util {

class TestStore {
 public:
  // A store on its own shard, which the test drives with RunUntil.
  explicit TestStore(const std::string& spec = ":memory:", const SecretSealer* sealer = nullptr)
      : own_(std::make_unique<runtime::Shard>()) {
    EXPECT_EQ(own_->Init({.buffer_count = 16}), 0);
    Open(*own_, spec, sealer);
  }
  // A store whose results arrive on `shard` (run by the test elsewhere).
  TestStore(runtime::Shard& shard, const std::string& spec) { Open(shard, spec, nullptr); }

  Store& store() { return *store_; }
  Store* operator->() { return store_.get(); }
  runtime::Shard& shard() { return *own_; }
  // Runs the own shard until `done` holds (results delivered), at most 10 s.
  bool RunUntil(const std::function<bool()>& done) { return own_->RunUntil(done, 10000); }

  absl::StatusOr<std::optional<AgentRecord>> FindAgent(std::string_view id) {
    return Sync<absl::StatusOr<std::optional<AgentRecord>>>(
        [id = std::string(id)](StoreConnection& c) { return c.FindAgent(id); });
  }
  absl::Status PutAgent(const AgentRecord& a) {
    return Sync<absl::Status>([a](StoreConnection& c) { return c.PutAgent(a); });
  }
  absl::Status SetState(std::string_view id, AgentState state) {
    return Sync<absl::Status>(
        [id = std::string(id), state](StoreConnection& c) { return c.SetState(id, state); });
  }
  absl::Status RecordStatus(std::string_view id, std::string_view status, int64_t now_ms) {
    return Sync<absl::Status>(
        [id = std::string(id), status = std::string(status), now_ms](StoreConnection& c) {
          return c.RecordStatus(id, status, now_ms);
        });
  }
  absl::Status PutClaim(const ClaimRecord& claim) {
    return Sync<absl::Status>([claim](StoreConnection& c) { return c.PutClaim(claim); });
  }
  absl::StatusOr<std::vector<AuditEntry>> RecentAudit(size_t limit) {
    return Sync<absl::StatusOr<std::vector<AuditEntry>>>(
        [limit](StoreConnection& c) { return c.RecentAudit(limit); });
  }

  template <typename T>
  T Sync(absl::AnyInvocable<T(StoreConnection&)> work) {
    return store_->Sync<T>(std::move(work));
  }

 private:
  void Open(runtime::Shard& shard, const std::string& spec, const SecretSealer* sealer) {
    auto store = Store::Open(shard, spec, sealer);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::unique_ptr<runtime::Shard> own_;
  std::unique_ptr<Store> store_;
};

}  // namespace camtunnel::manager::test_util
