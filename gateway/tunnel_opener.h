// Starting a tunnel to an agent's service: the checks every requester shares (agent online,
// service exposed, pending cap), the pending entry, and the OPEN frame. Used by the frontend
// and by the admin probe so both refuse and count the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gateway/gateway_metrics.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway {

class GatewayShard;
class TunnelWaiter;

struct OpenAttempt {
  OpenResult result = OpenResult::kOk;  // kOk: OPEN was sent and `waiter` will be called
  int status = 0;                       // status to answer when not kOk (404, 503, 403)
  std::string_view reason;
  proto::TunnelId tunnel_id = 0;
  std::string service;           // the exposed service's name
  std::string camera_authority;  // host:port the agent dials for it ("[v6]:port" for IPv6)
};

// `service` or `port` selects the exposed service (by name first, then by port).
OpenAttempt StartTunnel(GatewayShard& gw, std::string_view agent_id, std::string_view service,
                        std::optional<uint16_t> port, TunnelWaiter* waiter);

}  // namespace camtunnel::gateway
