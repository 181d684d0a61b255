// Per-shard index of live agent sessions, agents seen, and pending tunnels. Shard-local: no
// locks. "Is agent X online?" is answered on X's home shard.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway {

class ControlSession;
class TunnelWaiter;

struct PendingTunnel {
  std::string agent_id;
  std::string service;
  proto::Nonce nonce{};
  TunnelWaiter* waiter = nullptr;  // notified on data connection, failure or agent loss
};

// What the admin API shows about an agent beyond its live session, kept on its home shard for
// every agent seen (bounded by kMaxSeen) and never erased, so a relay may hold a pointer to it.
struct AgentStats {
  uint32_t sessions = 0;      // verified sessions installed; reconnects = sessions - 1
  uint32_t open_tunnels = 0;  // relaying now
  uint64_t tunnels = 0;       // established since first seen
  uint64_t bytes_to_camera = 0;
  uint64_t bytes_to_client = 0;
};

class AgentRegistry {
 public:
  // Bound on remembered agent ids (for 404 "never seen" vs 503 "offline"); past it, the set
  // stops growing and unknown agents are reported offline.
  static constexpr size_t kMaxSeen = 1'000'000;

  ControlSession* Find(std::string_view agent_id) const;
  // Makes `session` the live session of its agent; returns the one it replaces, or null.
  ControlSession* Install(std::string_view agent_id, ControlSession* session);
  // Removes `session` if it is still the live one.
  void Remove(std::string_view agent_id, const ControlSession* session);
  bool Seen(std::string_view agent_id) const {
    return seen_.contains(absl::string_view(agent_id.data(), agent_id.size()));
  }
  // Stats of an agent seen here, or null (never seen, or past kMaxSeen). Stable pointer.
  AgentStats* Stats(std::string_view agent_id);
  size_t online() const { return sessions_.size(); }
  template <typename F>
  void ForEachSession(F f) const {
    for (const auto& [id, s] : sessions_) {
      f(id, s);
    }
  }

  // A new tunnel id: top 8 bits the shard, low 56 random (unguessable; never reused while
  // pending).
  proto::TunnelId NewTunnelId(unsigned shard) const;
  void AddPending(proto::TunnelId id, PendingTunnel tunnel);
  const PendingTunnel* FindPending(proto::TunnelId id) const;
  std::optional<PendingTunnel> TakePending(proto::TunnelId id);
  size_t PendingFor(std::string_view agent_id) const;
  // Every pending tunnel of an agent whose session ended: their waiters are told.
  void FailPendingOf(std::string_view agent_id);

 private:
  absl::flat_hash_map<std::string, ControlSession*> sessions_;
  absl::node_hash_map<std::string, AgentStats> seen_;
  absl::flat_hash_map<proto::TunnelId, PendingTunnel> pending_;
  absl::flat_hash_map<std::string, uint32_t> pending_per_agent_;
};

}  // namespace camtunnel::gateway
