// Spare data connections (PROTOCOL.md section 8.1) on one shard: asked for with SPARE, held
// once proven, taken by the agent's next open (OPEN written on the spare, OPENED back), closed
// after the idle period or with the agent's session. An open on a spare skips the new
// connection's TCP and TLS handshakes and its data head: the media server waits for the camera
// only. Shard-local like the registry: an agent's spares live on its home shard.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway {

class ControlSession;
class GatewayShard;
class TunnelWaiter;

class SparePool {
 public:
  explicit SparePool(GatewayShard& gw) : gw_(gw) {}
  SparePool(const SparePool&) = delete;
  SparePool& operator=(const SparePool&) = delete;

  // The agent of `session` just opened a tunnel: asks it for spares up to its number, if it
  // speaks section 8.1. Only agents that open tunnels get asked, so an idle fleet holds none.
  // The number starts at spare_data_connections and follows the agent's opens: one more
  // whenever an open finds none held while one is on its way (its opens come faster than a
  // spare comes back: at 2.5 opens/s, one in a hundred would otherwise wait for a new data
  // connection), up to spare_data_connections_max; one less for each spare unused for
  // spare_idle_ms.
  void TopUp(ControlSession& session);
  // Runs the pending tunnel `id` (registered by the caller for `waiter`) on one of the agent's
  // spares: OPEN is written on it, followed at once by the waiter's FirstBytes when the agent
  // takes early data, and the agent's OPENED or OPEN_FAILED completes the pending tunnel; a
  // spare that dies before answering falls back to OPEN on `session` (and the early bytes are
  // sent again, on the new connection). False if the agent has no spare here (the caller sends
  // OPEN itself).
  bool Use(ControlSession& session, proto::TunnelId id, std::string_view service,
           TunnelWaiter& waiter, std::string_view camera_authority);
  // The agent's session ended or was replaced: its spares close.
  void DropAgent(std::string_view agent_id);
  size_t held() const { return held_; }

 private:
  class Request;  // SPARE sent, its data connection not here yet
  class Spare;    // proven, unused
  class Binding;  // OPEN written on a spare, the agent's answer not here yet

  struct AgentSpares {
    std::vector<Spare*> held;
    uint32_t requested = 0;
    uint32_t extra = 0;  // above spare_data_connections, earned by opens that found none
  };

  void Park(const std::string& agent_id, Spare* spare);
  void Unpark(Spare* spare);
  void RequestEnded(std::string_view agent_id);
  void Expired(std::string_view agent_id);

  GatewayShard& gw_;
  absl::flat_hash_map<std::string, AgentSpares> agents_;
  size_t held_ = 0;
};

}  // namespace camtunnel::gateway
