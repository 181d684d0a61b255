// Streamer health from each gateway's admin API: GET /readyz every interval (with the bearer
// token when the gateway's admin listener needs one); 200 means healthy, anything else (another
// status, a refused or silent connection within the timeout) unhealthy. The assignment rule then
// puts unhealthy Streamers last. Runs on the manager's shard.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  HealthChecker(runtime::Shard& shard, StreamerPool& pool, uint64_t interval_ms,
                uint64_t timeout_ms);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void Start();
  const HealthCounters& counters() const { return counters_; }
  // Called when a Streamer turns healthy (it may have restarted and lost its denylist).
  void set_on_healthy(std::function<void(size_t streamer)> fn) { on_healthy_ = std::move(fn); }
  // Called by a finished probe.
  void Report(size_t streamer, bool healthy);

 private:
  void CheckAll();

  runtime::Shard& shard_;
  StreamerPool& pool_;
  uint64_t interval_ms_;
  uint64_t timeout_ms_;
  std::vector<std::optional<sockaddr_storage>> targets_;  // admin address per Streamer
  std::vector<bool> in_flight_;
  HealthCounters counters_;
  std::function<void(size_t)> on_healthy_;
  runtime::Timer timer_;
  // Shared with the probes in flight: a probe finishing after the checker is gone (shard
  // shutdown) reports nowhere.
  std::shared_ptr<bool> alive_;
};

}  // namespace camtunnel::manager
