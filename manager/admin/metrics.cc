// GET /metrics: the manager's Prometheus text.
#include "manager/admin/admin_routes.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

void AddMetricsRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/metrics", [&server = server](http::Exchange& ex) {
    ex.Respond(200, "text/plain; version=0.0.4", server.RenderMetrics());
  });
}

}  // namespace camtunnel::manager::admin
