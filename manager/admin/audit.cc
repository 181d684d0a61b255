// GET /api/v1/audit: the most recent operator and system actions, newest first.
#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/admin/store_query.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

void AddAuditRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/audit", [&server = server](http::Exchange& ex) {
    using Entries = absl::StatusOr<std::vector<AuditEntry>>;
    StoreJob<Entries>(
        ex, server, {}, [](StoreConnection& c) { return c.RecentAudit(200); },
        [&server = server](http::Exchange& e, Entries entries) {
          if (!entries.ok()) {
            AnswerStoreError(e, server, entries.status());
            return;
          }
          nlohmann::json list = nlohmann::json::array();
          for (const AuditEntry& a : *entries) {
            list.push_back({{"at_ms", a.at_ms},
                            {"actor", a.actor},
                            {"action", a.action},
                            {"subject", a.subject},
                            {"detail", a.detail}});
          }
          e.Json(200, nlohmann::json{{"audit", list}}.dump() + "\n");
        });
  });
}

}  // namespace camtunnel::manager::admin
