// Revocation at the Streamers (DESIGN "Keys"): a deactivated agent's derived keys stay valid
// until they expire, so the manager pushes its id to every Streamer's denylist (PUT
// /api/v1/denylist/{id} on the gateway's admin API) and the gateway refuses it at once. A push
// that fails (the gateway is down, overloaded) is retried every `retry_ms` until that gateway
// answers 200; a gateway keeps its denylist in memory, so when one comes back healthy (a
// restart) it is sent every deactivated agent again. Runs on the manager's shard.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "manager/streamer_pool.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

struct RevocationCounters {
  uint64_t pushed = 0;   // a gateway answered 200
  uint64_t failed = 0;   // an attempt without 200 (retried)
  uint64_t pending = 0;  // (agent, Streamer) pairs not yet confirmed
};

class Revocations {
 public:
  Revocations(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms, uint64_t timeout_ms);
  ~Revocations();
  Revocations(const Revocations&) = delete;
  Revocations& operator=(const Revocations&) = delete;

  // To every Streamer that has an admin URL.
  void Revoke(const std::string& agent_id);
  // To one Streamer, e.g. after it came back: its denylist may be empty now.
  void Resend(size_t streamer, const std::vector<std::string>& agent_ids);
  RevocationCounters counters() const;

 private:
  void Send(size_t streamer, const std::string& agent_id);
  void RetryAll();

  runtime::Shard& shard_;
  StreamerPool& pool_;
  uint64_t retry_ms_;
  uint64_t timeout_ms_;
  std::vector<std::optional<sockaddr_storage>> targets_;  // admin address per Streamer
  std::vector<std::set<std::string>> pending_;            // per Streamer: not yet confirmed
  std::vector<std::set<std::string>> in_flight_;          // per Streamer: a push is out
  uint64_t pushed_ = 0;
  uint64_t failed_ = 0;
  runtime::Timer retry_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace camtunnel::manager
