// GET /api/v1/audit: the most recent operator and system actions, newest first.
#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

void AddAuditRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/audit", [&server](http::Exchange& ex) {
    auto entries = server.store().RecentAudit(200);
    if (!entries.ok()) {
      ex.Error(500, "state database error");
      return;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const AuditEntry& e : *entries) {
      list.push_back({{"at_ms", e.at_ms},
                      {"actor", e.actor},
                      {"action", e.action},
                      {"subject", e.subject},
                      {"detail", e.detail}});
    }
    ex.Json(200, nlohmann::json{{"audit", list}}.dump() + "\n");
  });
}

}  // namespace camtunnel::manager::admin
