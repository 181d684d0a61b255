// See admin_routes.h.
#include <string_view>
#include <utility>

#include "manager/admin/admin_routes.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {
namespace {

constexpr uint64_t kAdminTimeoutMs = 10000;

}  // namespace

std::unique_ptr<http::Server> MakeAdminServer(ManagerServer& server) {
  http::Router router;
  AddHealthRoutes(router, server);
  AddHandoverRoutes(router, server);
  AddMetricsRoutes(router, server);
  AddAgentRoutes(router, server);
  AddCommandRoutes(router, server);
  AddLookupRoutes(router, server);
  AddClaimRoutes(router, server);
  AddAuditRoutes(router, server);
  http::ServerOptions options{
      .keep_alive = false,
      .request_timeout_ms = kAdminTimeoutMs,
      // Loopback-only when empty (enforced at start-up).
      .bearer_token = [&server = server] { return std::string_view(server.config().admin_token); },
      .on_unauthorized = [&server = server] { ++server.counters().admin_unauthorized; },
  };
  return std::make_unique<http::Server>(server.shard(), std::move(router), std::move(options));
}

}  // namespace camtunnel::manager::admin
