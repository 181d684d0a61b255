// See health_checker.h.
#include "manager/health_checker.h"

#include <unistd.h>

#include <cerrno>
#include <memory>

#include "manager/admin_call.h"
#include "runtime/listener.h"
#include "runtime/log.h"

namespace camtunnel::manager {

HealthChecker::HealthChecker(runtime::Shard& shard, StreamerPool& pool, uint64_t interval_ms,
                             uint64_t timeout_ms)
    : shard_(shard),
      pool_(pool),
      interval_ms_(interval_ms),
      timeout_ms_(timeout_ms),
      targets_(pool.size()),
      in_flight_(pool.size(), false),
      successes_(pool.size(), kRise),
      alive_(std::make_shared<bool>(true)) {
  for (size_t i = 0; i < pool.size(); ++i) {
    targets_[i] = ParseAdminUrl(pool.config(i).admin_url);
  }
}

HealthChecker::~HealthChecker() { *alive_ = false; }

void HealthChecker::Start() {
  timer_.set_callback([this] { CheckAll(); });
  CheckAll();
}

void HealthChecker::Resume() {
  for (size_t i = 0; i < successes_.size(); ++i) {
    successes_[i] = pool_.healthy(i) ? kRise : 0;
  }
  CheckAll();  // the new leader probes now, not an interval later
}

void HealthChecker::CheckAll() {
  shard_.timers().Arm(timer_, shard_.now_ms(), interval_ms_);
  if (active_ && !active_()) {
    return;
  }
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (!targets_[i] || in_flight_[i]) {
      continue;
    }
    in_flight_[i] = true;
    ++counters_.checks;
    AdminRequest request{.to = targets_[i]->to,
                         .host = targets_[i]->host,
                         .token = pool_.config(i).admin_token,
                         .method = "GET",
                         .path = "/readyz",
                         .timeout_ms = timeout_ms_};
    CallAdmin(shard_, request, alive_,
              [this, i](int status, const std::string&) { Report(i, status == 200); });
  }
}

void HealthChecker::Report(size_t i, bool ok) {
  in_flight_[i] = false;
  if (active_ && !active_()) {
    return;  // leadership ended while the probe ran: the new leader judges
  }
  if (!ok) {
    ++counters_.failures;
    successes_[i] = 0;
  } else if (successes_[i] < kRise) {
    ++successes_[i];
  }
  const bool healthy = ok && successes_[i] >= kRise;
  if (pool_.healthy(i) != healthy) {
    ++counters_.transitions;
    runtime::LogEvent(healthy ? runtime::LogLevel::kInfo : runtime::LogLevel::kWarning,
                      healthy ? "streamer_healthy" : "streamer_unhealthy",
                      {runtime::Kv("streamer", pool_.config(i).url)});
    pool_.SetHealthy(i, healthy);
    if (healthy && on_healthy_) {
      on_healthy_(i);
    }
  }
  if (!ok && on_unhealthy_) {
    on_unhealthy_(i);
  }
}

}  // namespace camtunnel::manager
