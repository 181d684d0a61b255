// /healthz (any method): the manager runs its loop. /readyz: it can serve, which needs its state
// database: 503 while the store is unreachable (links stay up meanwhile; activations are answered
// 503 with Retry-After). No bearer token (probes).
#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

void AddHealthRoutes(http::Router& router, ManagerServer& server) {
  router.Add("", "/healthz", [](http::Exchange& ex) { ex.Json(200, R"({"ok":true})"); },
             {.public_route = true});
  router.Add("", "/readyz",
             [&server = server](http::Exchange& ex) {
               const bool store = server.store_reachable();
               nlohmann::json body{{"ready", store},
                                   {"store", store ? "reachable" : "unreachable"},
                                   {"backend", std::string(server.store().backend())},
                                   {"links", server.live_links()}};
               ex.Json(store ? 200 : 503, body.dump() + "\n");
             },
             {.public_route = true});
}

}  // namespace camtunnel::manager::admin
