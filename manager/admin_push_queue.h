// Calls to the Streamers' admin APIs that must eventually land: denylist entries (revocation)
// and relocation notices. Per (Streamer, agent) only the latest call matters: a newer one
// replaces a pending one. A call that fails (the gateway is stopped, restarting, overloaded)
// stays pending and is retried every `retry_ms` until the gateway confirms it; at most
// kMaxInFlight calls per Streamer run at once, so a fleet moving off (or revoked at) one gateway
// does not open thousands of connections to it. Runs on the manager's shard.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "manager/admin_call.h"
#include "manager/streamer_pool.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

struct AdminPush {
  std::string method;
  std::string path;
  std::string body;
  bool not_found_is_done = false;  // a DELETE answered 404 found nothing to forget: done
};

struct AdminPushCounters {
  uint64_t pushed = 0;   // a gateway confirmed a call
  uint64_t failed = 0;   // an attempt without confirmation (retried)
  uint64_t pending = 0;  // calls not yet confirmed
};

class AdminPushQueue {
 public:
  static constexpr size_t kMaxInFlight = 8;
  // Runs when a gateway confirmed `call` for the agent.
  using Confirmed =
      std::function<void(size_t streamer, const std::string& agent_id, const AdminPush& call)>;

  // `what` names the calls in the log (push=revocation, push=relocation).
  AdminPushQueue(runtime::Shard& shard, StreamerPool& pool, std::string what, uint64_t retry_ms,
                 uint64_t timeout_ms, Confirmed confirmed = {});
  ~AdminPushQueue();
  AdminPushQueue(const AdminPushQueue&) = delete;
  AdminPushQueue& operator=(const AdminPushQueue&) = delete;

  // Whether Streamer `streamer` has a usable admin URL (calls to others are dropped).
  bool reaches(size_t streamer) const { return targets_[streamer].has_value(); }
  bool pending(size_t streamer, const std::string& agent_id) const {
    return pending_[streamer].contains(agent_id);
  }
  void Push(size_t streamer, const std::string& agent_id, AdminPush call);
  // Sends what is pending for `streamer` now (it came back) instead of at the next retry.
  void Flush(size_t streamer);
  AdminPushCounters counters() const;

 private:
  struct Pending {
    AdminPush call;
    uint64_t generation = 0;
  };
  void Pump(size_t streamer);
  void Send(size_t streamer, const std::string& agent_id, const Pending& what);

  runtime::Shard& shard_;
  StreamerPool& pool_;
  const std::string what_;
  const uint64_t retry_ms_;
  const uint64_t timeout_ms_;
  Confirmed confirmed_;
  uint64_t next_generation_ = 1;
  std::vector<std::optional<AdminTarget>> targets_;      // per Streamer
  std::vector<std::map<std::string, Pending>> pending_;  // per Streamer, by agent
  std::vector<std::set<std::string>> in_flight_;         // per Streamer
  uint64_t pushed_ = 0;
  uint64_t failed_ = 0;
  runtime::Timer retry_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace camtunnel::manager
