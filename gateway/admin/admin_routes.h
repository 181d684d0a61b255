// The gateway's admin API (admin listener, default 127.0.0.1:9310): one routing table served by
// the shared HTTP server (http/server.h), one file per resource. Every shard has the server, but
// only the first listens: a request about one agent moves to that agent's home shard (the
// connection and its bytes, through GatewayShard::HandOver) and is routed again there; one
// about all of them (list, metrics, drain, denylist) asks every shard (fan_out.h). Bearer token
// (admin_token_file) on everything but /healthz and /readyz; one request per connection, as
// before (admin traffic is rare, and scripts read answers to EOF).
#pragma once

#include <memory>
#include <string_view>

#include "http/router.h"
#include "http/server.h"

namespace camtunnel::gateway {

class GatewayShard;

namespace admin {

// The server of one shard (built for each, adopted connections land on any).
std::unique_ptr<http::Server> MakeAdminServer(GatewayShard& gw);

// One per resource file.
void AddHealthRoutes(http::Router& router, GatewayShard& gw);      // /healthz, /readyz
void AddMetricsRoutes(http::Router& router, GatewayShard& gw);     // /metrics
void AddAgentRoutes(http::Router& router, GatewayShard& gw);       // /api/v1/agents...
void AddDrainRoutes(http::Router& router, GatewayShard& gw);       // /api/v1/drain
void AddDenylistRoutes(http::Router& router, GatewayShard& gw);    // /api/v1/denylist...
void AddRelocationRoutes(http::Router& router, GatewayShard& gw);  // /api/v1/relocations...

// Shared by the resources. True if the request was handed to `agent_id`'s home shard, where it
// is routed again and answered; false when this is the home shard.
bool MovedToHomeShard(http::Exchange& ex, GatewayShard& gw, std::string_view agent_id);
// The 503 for an answer that needed a shard which could not be reached.
void ShardUnreachable(const http::Reply& reply);

// Agents listed per page unless ?limit= says otherwise, and the most one page may hold: lists
// are built and sorted on the shard's loop, so a page stays small.
inline constexpr size_t kDefaultPage = 100;
inline constexpr size_t kMaxPage = 1000;

}  // namespace admin
}  // namespace camtunnel::gateway
