#include "gateway/agent_registry.h"

#include <vector>

#include "gateway/tunnel_waiter.h"
#include "proto/crypto.h"

namespace camtunnel::gateway {
namespace {
// Debian's Abseil is built as C++17, where absl::string_view is its own type: heterogeneous
// lookups need it, not std::string_view.
absl::string_view Key(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace

ControlSession* AgentRegistry::Find(std::string_view agent_id) const {
  auto it = sessions_.find(Key(agent_id));
  return it == sessions_.end() ? nullptr : it->second;
}

ControlSession* AgentRegistry::Install(std::string_view agent_id, ControlSession* session) {
  if (seen_.size() < kMaxSeen || seen_.contains(Key(agent_id))) {
    ++seen_[Key(agent_id)].sessions;
  }
  auto [it, inserted] = sessions_.try_emplace(std::string(agent_id), session);
  if (inserted) {
    return nullptr;
  }
  ControlSession* old = it->second;
  it->second = session;
  return old;
}

AgentStats* AgentRegistry::Stats(std::string_view agent_id) {
  auto it = seen_.find(Key(agent_id));
  return it == seen_.end() ? nullptr : &it->second;
}

void AgentRegistry::Remove(std::string_view agent_id, const ControlSession* session) {
  auto it = sessions_.find(Key(agent_id));
  if (it != sessions_.end() && it->second == session) {
    sessions_.erase(it);
  }
}

proto::TunnelId AgentRegistry::NewTunnelId(unsigned shard) const {
  for (;;) {
    uint64_t r = 0;
    proto::RandomBytes({reinterpret_cast<uint8_t*>(&r), sizeof(r)});
    const proto::TunnelId id = (uint64_t{shard} << proto::kTunnelShardShift) |
                               (r & ((1ull << proto::kTunnelShardShift) - 1));
    if (!pending_.contains(id)) {
      return id;
    }
  }
}

void AgentRegistry::AddPending(proto::TunnelId id, PendingTunnel tunnel) {
  ++pending_per_agent_[tunnel.agent_id];
  pending_.emplace(id, std::move(tunnel));
}

const PendingTunnel* AgentRegistry::FindPending(proto::TunnelId id) const {
  auto it = pending_.find(id);
  return it == pending_.end() ? nullptr : &it->second;
}

std::optional<PendingTunnel> AgentRegistry::TakePending(proto::TunnelId id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return std::nullopt;
  }
  PendingTunnel t = std::move(it->second);
  pending_.erase(it);
  auto count = pending_per_agent_.find(t.agent_id);
  if (count != pending_per_agent_.end() && --count->second == 0) {
    pending_per_agent_.erase(count);
  }
  return t;
}

size_t AgentRegistry::PendingFor(std::string_view agent_id) const {
  auto it = pending_per_agent_.find(Key(agent_id));
  return it == pending_per_agent_.end() ? 0 : it->second;
}

void AgentRegistry::FailPendingOf(std::string_view agent_id) {
  if (PendingFor(agent_id) == 0) {
    return;
  }
  std::vector<proto::TunnelId> ids;
  for (const auto& [id, t] : pending_) {
    if (t.agent_id == agent_id) {
      ids.push_back(id);
    }
  }
  for (proto::TunnelId id : ids) {
    auto t = TakePending(id);
    if (t && t->waiter != nullptr) {
      t->waiter->OnAgentGone();
    }
  }
}

}  // namespace camtunnel::gateway
