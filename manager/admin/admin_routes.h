// The manager's admin API (admin listener, plain HTTP, loopback by default; bearer token
// required when bound beyond loopback): one routing table served by the shared HTTP server
// (http/server.h), one file per resource. /healthz, /metrics, GET /api/v1/agents[/{id}],
// POST /api/v1/agents/{id}/deactivate|restart|move?streamer=URL, GET /api/v1/lookup/{id} (the
// gateway that holds an agent now), GET /api/v1/claims, PUT|DELETE /api/v1/claims/{serial},
// GET /api/v1/audit; POST /api/v1/handover from a separate activation server (PROTOCOL.md
// section 10.4, MACed instead of the bearer token). One request per connection.
#pragma once

#include <memory>
#include <optional>

#include "http/router.h"
#include "http/server.h"
#include "proto/http_query.h"

namespace camtunnel::manager {

class ManagerServer;

namespace admin {

std::unique_ptr<http::Server> MakeAdminServer(ManagerServer& server);

// One per resource file.
void AddHealthRoutes(http::Router& router, ManagerServer& server);    // /healthz
void AddMetricsRoutes(http::Router& router, ManagerServer& server);   // /metrics
void AddAgentRoutes(http::Router& router, ManagerServer& server);     // /api/v1/agents...
void AddCommandRoutes(http::Router& router, ManagerServer& server);   // commands to agents
void AddLookupRoutes(http::Router& router, ManagerServer& server);    // /api/v1/lookup/{id}
void AddClaimRoutes(http::Router& router, ManagerServer& server);     // /api/v1/claims...
void AddAuditRoutes(http::Router& router, ManagerServer& server);     // /api/v1/audit
void AddHandoverRoutes(http::Router& router, ManagerServer& server);  // /api/v1/handover

// Rows a page holds at most (?limit=, default kDefaultPage), and the largest request body (one
// small JSON object).
inline constexpr size_t kMaxListed = 1000;
inline constexpr size_t kDefaultPage = 100;
inline constexpr size_t kMaxBody = 1024;

// ?limit= of a paged list: kDefaultPage when absent, nullopt when not 1..kMaxListed.
std::optional<size_t> PageLimit(const proto::QueryParams& query);

}  // namespace admin
}  // namespace camtunnel::manager
