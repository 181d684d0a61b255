// Revocation at the Streamers (DESIGN "Keys"): a deactivated agent's derived keys stay valid
// until they expire, so the manager pushes its id to every Streamer's denylist (PUT
// /api/v1/denylist/{id} on the gateway's admin API) and the gateway refuses it at once. A push
// that fails (the gateway is down, overloaded) is retried every `retry_ms` until that gateway
// answers 200; a gateway keeps its denylist in memory, so when one comes back healthy (a
// restart) it is sent every deactivated agent again. Runs on the manager's shard.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "manager/admin_push_queue.h"
#include "manager/streamer_pool.h"
#include "runtime/shard.h"

namespace camtunnel::manager {

class Revocations {
 public:
  Revocations(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms, uint64_t timeout_ms);

  // To every Streamer that has an admin URL.
  void Revoke(const std::string& agent_id);
  // To one Streamer, e.g. after it came back: its denylist may be empty now.
  void Resend(size_t streamer, const std::vector<std::string>& agent_ids);
  // pushed: a gateway answered 200; failed: an attempt without (retried); pending: (agent,
  // Streamer) pairs not yet confirmed.
  AdminPushCounters counters() const { return queue_.counters(); }

 private:
  StreamerPool& pool_;
  AdminPushQueue queue_;
};

}  // namespace camtunnel::manager
