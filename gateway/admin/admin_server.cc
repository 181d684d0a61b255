// See admin_routes.h.
#include <string>
#include <utility>

#include "gateway/admin/admin_routes.h"
#include "gateway/gateway_shard.h"

namespace camtunnel::gateway::admin {
namespace {

// Long enough for a probe: open deadline plus the camera's answer.
constexpr uint64_t kAdminTimeoutMs = 15000;

}  // namespace

std::unique_ptr<http::Server> MakeAdminServer(GatewayShard& gw) {
  http::Router router;
  AddHealthRoutes(router, gw);
  AddMetricsRoutes(router, gw);
  AddAgentRoutes(router, gw);
  AddDrainRoutes(router, gw);
  AddDenylistRoutes(router, gw);
  AddRelocationRoutes(router, gw);
  http::ServerOptions options{
      .keep_alive = false,
      .request_timeout_ms = kAdminTimeoutMs,
      // Read per request: a reload may change it.
      .bearer_token = [&gw] { return std::string_view(gw.config().admin_token); },
      .on_unauthorized = [&gw] { gw.metrics().admin_unauthorized.Add(); },
  };
  return std::make_unique<http::Server>(gw.shard(), std::move(router), std::move(options));
}

bool MovedToHomeShard(http::Exchange& ex, GatewayShard& gw, std::string_view agent_id) {
  const unsigned home = gw.HomeShard(agent_id);
  if (home == gw.index()) {
    return false;
  }
  ex.MoveConnection(
      [&gw, home](runtime::Stream* stream, runtime::StreamHandler* current, std::string bytes) {
        return gw.HandOver(home, stream, current,
                           [stream, bytes = std::move(bytes)](GatewayShard& to) mutable {
                             to.admin_server().Adopt(stream, std::move(bytes));
                           });
      });
  return true;
}

void ShardUnreachable(const http::Reply& reply) {
  reply.Error(503, "a shard is too busy to answer; retry");
}

}  // namespace camtunnel::gateway::admin
