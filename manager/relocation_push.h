// Telling Streamers where agents went (DESIGN "Frontend and admin surfaces": a gateway answers a
// request for an agent it no longer holds with a redirect "once the manager tells us"). When an
// agent reports itself connected to Streamer B after Streamer A, the manager PUTs
// /api/v1/relocations/{id} {"frontend": B's frontend URL} at A, and DELETEs a relocation it had
// put at B earlier (the agent is back there).
// Calls go through an AdminPushQueue (latest instruction per agent, retried until confirmed).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "manager/admin_push_queue.h"
#include "manager/streamer_pool.h"
#include "runtime/shard.h"

namespace camtunnel::manager {

class RelocationPush {
 public:
  RelocationPush(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms, uint64_t timeout_ms);

  // `agent_id` is connected to Streamer `to` now, after Streamer `from` (nullopt: unknown).
  void Moved(const std::string& agent_id, std::optional<size_t> from, size_t to);
  // Sends what is pending for `streamer` now (it came back) instead of at the next retry.
  void Flush(size_t streamer) { queue_.Flush(streamer); }
  // pushed: a gateway confirmed a PUT or DELETE; failed: an attempt without (retried);
  // pending: instructions not yet confirmed.
  AdminPushCounters counters() const { return queue_.counters(); }

 private:
  StreamerPool& pool_;
  std::vector<std::set<std::string>> relocated_;  // per Streamer: agents with a PUT confirmed
  AdminPushQueue queue_;
};

}  // namespace camtunnel::manager
