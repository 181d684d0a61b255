// GET /api/v1/lookup/{id}: where an agent is now, for whoever must reach it (a media server's
// control plane, or a gateway without a relocation): the Streamer it last reported itself
// connected to, else the first of its last ASSIGN; with that Streamer's frontend URL when
// configured.
#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/admin/store_query.h"
#include "manager/manager_server.h"
#include "proto/identifiers.h"

namespace camtunnel::manager::admin {
namespace {

void Answer(http::Exchange& ex, ManagerServer& server, const AgentRecord& r) {
  if (r.state != AgentState::kActive) {
    ex.Error(404, "unknown or deactivated agent");
    return;
  }
  const bool reported = !r.located_url.empty();
  const std::string& url = reported ? r.located_url : r.streamer_url;
  if (url.empty()) {
    ex.Error(404, "agent not placed on any Streamer yet");
    return;
  }
  nlohmann::json j{{"agent", r.agent_id},
                   {"streamer", url},
                   {"source", reported ? "status" : "assignment"},
                   {"linked", server.FindLink(r.agent_id) != nullptr},
                   {"frontend", nullptr}};
  if (const std::optional<size_t> i = server.pool().Find(url); i) {
    if (const std::string& f = server.pool().config(*i).frontend_url; !f.empty()) {
      j["frontend"] = f;
    }
  }
  ex.Json(200, j.dump() + "\n");
}

void Lookup(http::Exchange& ex, ManagerServer& server) {
  WithAgent(ex, server,
            [&server = server](http::Exchange& e, const AgentRecord& r) { Answer(e, server, r); });
}

}  // namespace

void AddLookupRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/lookup/{id}",
             [&server = server](http::Exchange& ex) { Lookup(ex, server); });
}

}  // namespace camtunnel::manager::admin
