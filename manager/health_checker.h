// Streamer health from each gateway's admin API: GET /readyz every interval (with the bearer
// token when the gateway's admin listener needs one); 200 means healthy, anything else (another
// status such as the 503 of a draining gateway, a refused or silent connection within the
// timeout) unhealthy. The assignment rule then puts unhealthy Streamers last, and the manager
// moves the agents still there (ManagerServer::MoveOffStreamer).
//
// Hysteresis against flapping: one failed check makes a Streamer unhealthy at once (a drain is
// announced, a dead node does not come back by waiting), but it is healthy again only after
// kRise checks in a row succeed, so a node that answers every other probe stays out. Runs on the
// manager's shard.
//
// With several managers only the leader probes (set_active, leader_lease.h): one view of each
// Streamer for the whole deployment, published through the store, instead of one per manager
// that could disagree and move agents back and forth.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "manager/admin_call.h"
#include "manager/streamer_pool.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

struct HealthCounters {
  uint64_t checks = 0;
  uint64_t failures = 0;
  uint64_t transitions = 0;  // healthy <-> unhealthy
};

class HealthChecker {
 public:
  static constexpr uint32_t kRise = 3;

  HealthChecker(runtime::Shard& shard, StreamerPool& pool, uint64_t interval_ms,
                uint64_t timeout_ms);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void Start();
  // Probes run, and their results count, only while `active` says so; Resume() when it turns
  // true again: the hysteresis restarts from the pool's health as it is then (read from the
  // store, where the previous leader left it).
  void set_active(std::function<bool()> active) { active_ = std::move(active); }
  void Resume();
  const HealthCounters& counters() const { return counters_; }
  // Called when a Streamer turns healthy (it may have restarted and lost its denylist).
  void set_on_healthy(std::function<void(size_t streamer)> fn) { on_healthy_ = std::move(fn); }
  // Called after every failed check (not only the transition), so work on an unhealthy
  // Streamer's agents can be paced over several checks.
  void set_on_unhealthy(std::function<void(size_t streamer)> fn) { on_unhealthy_ = std::move(fn); }
  // Called by a finished probe: `ok` is a 200 within the timeout.
  void Report(size_t streamer, bool ok);

 private:
  void CheckAll();

  runtime::Shard& shard_;
  StreamerPool& pool_;
  uint64_t interval_ms_;
  uint64_t timeout_ms_;
  std::vector<std::optional<AdminTarget>> targets_;  // admin address per Streamer
  std::vector<bool> in_flight_;
  std::vector<uint32_t> successes_;  // consecutive successful checks per Streamer
  HealthCounters counters_;
  std::function<void(size_t)> on_healthy_;
  std::function<void(size_t)> on_unhealthy_;
  std::function<bool()> active_;
  runtime::Timer timer_;
  // Shared with the probes in flight: a probe finishing after the checker is gone (shard
  // shutdown) reports nowhere.
  std::shared_ptr<bool> alive_;
};

}  // namespace camtunnel::manager
