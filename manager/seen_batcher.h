// Last-seen times and STATUS texts of linked agents, kept in memory and written to the store in
// batches: one transaction per flush, not one synced write per heartbeat or STATUS. A fleet of
// 50,000 agents on 5 s heartbeats is 10,000 frames a second; the store sees a few transactions.
//
// What a flush loses on a crash is at most one flush interval of last-seen times, which the next
// heartbeat of each live agent restores.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "manager/store.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class SeenBatcher {
 public:
  // Flushes every `interval_ms`, or at once when `max_batch` agents wait.
  SeenBatcher(runtime::Shard& shard, Store& store, uint64_t interval_ms, size_t max_batch = 2000);
  ~SeenBatcher();
  SeenBatcher(const SeenBatcher&) = delete;
  SeenBatcher& operator=(const SeenBatcher&) = delete;

  // The agent was heard from at `wall_ms`; a non-empty `status` replaces its stored STATUS.
  void Touch(std::string_view agent_id, int64_t wall_ms, std::string_view status = {});
  // Writes what waits now (shutdown, tests).
  void Flush();

  size_t waiting() const { return waiting_.size(); }
  uint64_t flushes() const { return flushes_; }

 private:
  runtime::Shard& shard_;
  Store& store_;
  uint64_t interval_ms_;
  size_t max_batch_;
  absl::flat_hash_map<std::string, SeenUpdate> waiting_;
  runtime::Timer timer_;
  bool armed_ = false;
  uint64_t flushes_ = 0;
};

}  // namespace camtunnel::manager
