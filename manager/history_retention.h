// Retention of the manager's history: activation attempts, audit entries and commands that are
// over, older than the retention period, are deleted by the leader (leader_lease.h) in batches,
// each batch one fenced transaction, so a fleet's years of history never pile up and never lock
// the tables for long. Agents, claims and links are state, not history: never pruned.
#pragma once

#include <cstdint>
#include <memory>

#include "manager/leader_lease.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class HistoryRetention {
 public:
  static constexpr size_t kBatch = 5000;  // rows per table per transaction

  // Every `check_ms`, while leading: rows older than `retention_ms` go (0: kept forever).
  HistoryRetention(runtime::Shard& shard, LeaderLease& lease, uint64_t retention_ms,
                   uint64_t check_ms);
  ~HistoryRetention();
  HistoryRetention(const HistoryRetention&) = delete;
  HistoryRetention& operator=(const HistoryRetention&) = delete;

  void Start();
  uint64_t pruned() const { return pruned_; }
  uint64_t failures() const { return failures_; }

 private:
  void Check();
  void PruneBatch(int64_t before_ms);

  runtime::Shard& shard_;
  LeaderLease& lease_;
  uint64_t retention_ms_;
  uint64_t check_ms_;
  bool running_ = false;  // batches of the last check still going
  uint64_t pruned_ = 0;
  uint64_t failures_ = 0;
  runtime::Timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace camtunnel::manager
