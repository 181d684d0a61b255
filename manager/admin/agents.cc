// The activated agents: GET /api/v1/agents, GET /api/v1/agents/{id}, and the commands
// POST /api/v1/agents/{id}/deactivate|restart|move?streamer=URL.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "manager/admin/admin_routes.h"
#include "manager/agent_link.h"
#include "manager/manager_server.h"
#include "proto/encoding.h"
#include "proto/http_query.h"
#include "proto/identifiers.h"

namespace camtunnel::manager::admin {
namespace {

using nlohmann::json;

json AgentJson(const AgentRecord& r, AgentLink* link) {
  json j{{"id", r.agent_id},
         {"state", std::string(AgentStateName(r.state))},
         {"operator", r.operator_id},
         {"activated_at_ms", r.activated_at_ms},
         {"last_seen_ms", r.last_seen_ms},
         {"last_status", r.last_status},
         {"streamer", r.streamer_url},
         {"linked", link != nullptr}};
  if (link != nullptr) {
    j["remote"] = link->remote();
    j["version"] = link->version();
    j["transport"] = link->plain() ? "plain" : "tls";
    j["connected_since_ms"] = link->connected_wall_ms();
    j["last_status"] = link->last_status().empty() ? r.last_status : link->last_status();
    json list = json::array();
    for (const auto& s : link->assigned()) {
      list.push_back({{"url", s.url}, {"key_ref", proto::FormatKeyRef(s.key_ref)}});
    }
    j["assigned"] = list;
  }
  return j;
}

void List(http::Exchange& ex, ManagerServer& server) {
  auto agents = server.store().ListAgents(kMaxListed);
  if (!agents.ok()) {
    ex.Error(500, "state database error");
    return;
  }
  json list = json::array();
  for (const AgentRecord& r : *agents) {
    list.push_back(AgentJson(r, server.FindLink(r.agent_id)));
  }
  ex.Json(200, json{{"agents", list}}.dump() + "\n");
}

void Show(http::Exchange& ex, ManagerServer& server) {
  const std::string_view id = ex.param("id");
  if (!proto::IsCanonicalAgentId(id)) {
    ex.Error(400, "not a canonical agent id");
    return;
  }
  auto agent = server.store().FindAgent(id);
  if (!agent.ok()) {
    ex.Error(500, "state database error");
  } else if (!agent->has_value()) {
    ex.Error(404, "unknown agent");
  } else {
    ex.Json(200, AgentJson(**agent, server.FindLink(id)).dump() + "\n");
  }
}

// deactivate: recorded first (the agent stays refused even if it is offline now), then sent.
// restart and move need a live link: 409 otherwise.
void Command(http::Exchange& ex, ManagerServer& server) {
  const std::string_view id = ex.param("id");
  const std::string_view command = ex.param("command");
  if (!proto::IsCanonicalAgentId(id)) {
    ex.Error(400, "not a canonical agent id");
    return;
  }
  auto agent = server.store().FindAgent(id);
  if (!agent.ok() || !agent->has_value()) {
    ex.Error(agent.ok() ? 404 : 500, "unknown agent");
    return;
  }
  AgentLink* link = server.FindLink(id);
  const int64_t now = ManagerServer::WallMs();
  if (command == "deactivate") {
    if (!server.store().SetState(id, AgentState::kDeactivated).ok()) {
      ex.Error(500, "state database error");
      return;
    }
    server.store().CheckWrite(
        "audit", server.store().Audit({.at_ms = now,
                                       .actor = "admin",
                                       .action = "deactivate",
                                       .subject = std::string(id),
                                       .detail = link != nullptr ? "sent" : "offline"}));
    if (link != nullptr) {
      link->SendDeactivate("deactivated by the operator");
    }
    // Its keys still verify at the Streamers until they expire: revoke them there now.
    if (server.revocations() != nullptr) {
      server.revocations()->Revoke(std::string(id));
    }
    ex.Json(200, json{{"deactivated", true}, {"sent", link != nullptr}}.dump() + "\n");
    return;
  }
  if (link == nullptr) {
    ex.Error(409, "agent not linked");
    return;
  }
  if (command == "restart") {
    server.store().CheckWrite(
        "audit",
        server.store().Audit(
            {.at_ms = now, .actor = "admin", .action = "restart", .subject = std::string(id)}));
    link->SendRestart("restart requested by the operator");
    ex.Json(200, R"({"sent":true})");
  } else if (command == "move") {
    const std::optional<proto::QueryParams> query = proto::QueryParams::Parse(ex.raw_query());
    const std::string url =
        query ? std::string(query->Get("streamer").value_or(std::string_view())) : std::string();
    bool known = false;
    for (size_t i = 0; i < server.pool().size(); ++i) {
      known |= server.pool().config(i).url == url;
    }
    if (!known) {
      ex.Error(400, "streamer= must name a configured Streamer URL");
      return;
    }
    server.store().CheckWrite("audit", server.store().Audit({.at_ms = now,
                                                             .actor = "admin",
                                                             .action = "move",
                                                             .subject = std::string(id),
                                                             .detail = url}));
    link->SendAssign(url);
    link->SendSwitch(url);
    ex.Json(200, R"({"sent":true})");
  } else {
    ex.Error(404, "commands: deactivate, restart, move");
  }
}

}  // namespace

void AddAgentRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/agents", [&server](http::Exchange& ex) { List(ex, server); });
  router.Add("GET", "/api/v1/agents/{id}", [&server](http::Exchange& ex) { Show(ex, server); });
  router.Add("POST", "/api/v1/agents/{id}/{command}",
             [&server](http::Exchange& ex) { Command(ex, server); });
}

}  // namespace camtunnel::manager::admin
