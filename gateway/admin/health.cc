// /healthz (the process runs its loop) and /readyz (listeners open, not draining): probes, so
// no bearer token, and plain-text answers a load balancer can match.
#include "gateway/admin/admin_routes.h"
#include "gateway/gateway_shard.h"

namespace camtunnel::gateway::admin {

void AddHealthRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/healthz", [](http::Exchange& ex) { ex.Respond(200, "text/plain", "ok\n"); },
             {.public_route = true});
  router.Add("GET", "/readyz",
             [&gw](http::Exchange& ex) {
               if (gw.ready()) {
                 ex.Respond(200, "text/plain", "ready\n");
               } else {
                 ex.Respond(503, "text/plain", gw.draining() ? "draining\n" : "not ready\n");
               }
             },
             {.public_route = true});
}

}  // namespace camtunnel::gateway::admin
