#include "gateway/tunnel_opener.h"

#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "proto/crypto.h"

namespace camtunnel::gateway {
namespace {

std::string Authority(const proto::ServiceEntry& s) {
  const bool v6 = s.host.find(':') != std::string::npos && s.host.front() != '[';
  return (v6 ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port);
}

OpenAttempt Refused(OpenResult result, int status, std::string_view reason) {
  OpenAttempt a;
  a.result = result;
  a.status = status;
  a.reason = reason;
  return a;
}

}  // namespace

OpenAttempt StartTunnel(GatewayShard& gw, std::string_view agent_id, std::string_view service,
                        std::optional<uint16_t> port, TunnelWaiter* waiter) {
  ControlSession* session = gw.registry().Find(agent_id);
  // A session that is saying GOAWAY or ERROR will not answer an OPEN any more.
  if (session == nullptr || !session->verified()) {
    return gw.registry().Seen(agent_id) ? Refused(OpenResult::kOffline, 503, "agent offline")
                                        : Refused(OpenResult::kUnknownAgent, 404, "unknown agent");
  }
  const proto::ServiceEntry* entry = session->FindService(service, port);
  if (entry == nullptr) {
    return Refused(OpenResult::kNotExposed, 403, "service not exposed by this agent");
  }
  if (gw.registry().PendingFor(agent_id) >= gw.config().max_pending_tunnels_per_agent) {
    return Refused(OpenResult::kBusy, 503, "too many tunnels opening for this agent");
  }
  OpenAttempt a;
  a.service = entry->name;
  a.camera_authority = Authority(*entry);
  a.tunnel_id = gw.registry().NewTunnelId(gw.shard().id());
  PendingTunnel pending;
  pending.agent_id = std::string(agent_id);
  pending.service = entry->name;
  proto::RandomBytes(pending.nonce);
  pending.waiter = waiter;
  const proto::Nonce nonce = pending.nonce;
  gw.registry().AddPending(a.tunnel_id, std::move(pending));
  if (!gw.spares().Use(*session, a.tunnel_id, entry->name, *waiter, a.camera_authority)) {
    session->SendOpen(a.tunnel_id, entry->name, nonce);
  }
  // An agent that opens tunnels keeps its next one warm (PROTOCOL.md 8.1).
  gw.spares().TopUp(*session);
  return a;
}

}  // namespace camtunnel::gateway
