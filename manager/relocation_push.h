// Telling Streamers where agents went (DESIGN "Frontend and admin surfaces": a gateway answers a
// request for an agent it no longer holds with a redirect "once the manager tells us"). When an
// agent reports itself connected to Streamer B after Streamer A, the manager PUTs
// /api/v1/relocations/{id} {"frontend": B's frontend URL} at A, and DELETEs a relocation it had
// put at B earlier (the agent is back there).
//
// Per (Streamer, agent) only the latest instruction matters: a newer one replaces a pending one.
// A push that fails (gateway stopped, restarting) stays pending and is retried every `retry_ms`
// until the gateway answers; at most kMaxInFlight calls per Streamer run at once, so moving a
// whole fleet off one gateway does not open thousands of connections to it. Runs on the
// manager's shard.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "manager/streamer_pool.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

struct RelocationPushCounters {
  uint64_t pushed = 0;   // a gateway confirmed a PUT or DELETE
  uint64_t failed = 0;   // an attempt without confirmation (retried)
  uint64_t pending = 0;  // instructions not yet confirmed
};

class RelocationPush {
 public:
  static constexpr size_t kMaxInFlight = 8;

  RelocationPush(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms, uint64_t timeout_ms);
  ~RelocationPush();
  RelocationPush(const RelocationPush&) = delete;
  RelocationPush& operator=(const RelocationPush&) = delete;

  // `agent_id` is connected to Streamer `to` now, after Streamer `from` (nullopt: unknown).
  void Moved(const std::string& agent_id, std::optional<size_t> from, size_t to);
  // Sends what is pending for `streamer` now (it came back) instead of at the next retry.
  void Flush(size_t streamer);
  RelocationPushCounters counters() const;

 private:
  struct Instruction {
    std::optional<std::string> frontend;  // PUT this; nullopt: DELETE
    uint64_t generation = 0;
  };
  void Pump(size_t streamer);
  void Send(size_t streamer, const std::string& agent_id, const Instruction& what);
  void RetryAll();

  runtime::Shard& shard_;
  StreamerPool& pool_;
  uint64_t retry_ms_;
  uint64_t timeout_ms_;
  uint64_t next_generation_ = 1;
  std::vector<std::optional<sockaddr_storage>> targets_;     // admin address per Streamer
  std::vector<std::map<std::string, Instruction>> pending_;  // per Streamer, by agent
  std::vector<std::set<std::string>> in_flight_;             // per Streamer
  std::vector<std::set<std::string>> relocated_;  // per Streamer: agents with a PUT confirmed
  uint64_t pushed_ = 0;
  uint64_t failed_ = 0;
  runtime::Timer retry_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace camtunnel::manager
