// The activated agents: GET /api/v1/agents (paged, filtered, counted) and GET
// /api/v1/agents/{id}. Commands to them are commands.cc's.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "manager/admin/admin_routes.h"
#include "manager/admin/store_query.h"
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
    // The link's own copies are exact; the store's are written in batches.
    j["remote"] = link->remote();
    j["version"] = link->version();
    j["transport"] = link->plain() ? "plain" : "tls";
    j["connected_since_ms"] = link->connected_wall_ms();
    j["last_seen_ms"] = std::max(r.last_seen_ms, link->last_seen_wall_ms());
    j["last_status"] = link->last_status().empty() ? r.last_status : link->last_status();
    if (!link->assigned_url().empty()) {
      j["streamer"] = link->assigned_url();
    }
    json list = json::array();
    for (const auto& s : link->assigned()) {
      list.push_back({{"url", s.url}, {"key_ref", proto::FormatKeyRef(s.key_ref)}});
    }
    j["assigned"] = list;
  }
  return j;
}

// The query of GET /api/v1/agents, as the gateway's: limit=1..1000 (default 100), cursor=ID
// (the previous page's next_cursor), and the filters state=active|deactivated, streamer=URL,
// operator=ID, online=1|0 (heard from within the last-seen resolution plus two heartbeats).
// Anything else is refused: nullopt with `error`.
std::optional<AgentQuery> ParseAgentQuery(const proto::QueryParams& params,
                                          const ManagerConfig& config, std::string* error) {
  AgentQuery q;
  const std::optional<size_t> limit = PageLimit(params);
  if (!limit) {
    *error = "limit must be 1..1000";
    return std::nullopt;
  }
  q.limit = *limit;
  for (const auto& [key, value] : params.pairs()) {
    if (key == "limit") {
      continue;
    }
    if (key == "cursor" && proto::IsCanonicalAgentId(value)) {
      q.after = value;
    } else if (key == "state" && ParseAgentState(value)) {
      q.state = ParseAgentState(value);
    } else if (key == "streamer" && !value.empty()) {
      q.streamer_url = value;
    } else if (key == "operator" && !value.empty()) {
      q.operator_id = value;
    } else if (key == "online" && (value == "1" || value == "0")) {
      const int64_t since =
          ManagerServer::WallMs() -
          static_cast<int64_t>(config.seen_resolution_ms + uint64_t{2} * config.heartbeat_ms);
      (value == "1" ? q.seen_since_ms : q.seen_before_ms) = since;
    } else {
      *error =
          "query takes limit=1..1000, cursor=<agent id>, state=active|deactivated, "
          "streamer=<url>, operator=<id>, online=1|0";
      return std::nullopt;
    }
  }
  return q;
}

// {"agents":[...],"total":N,"next_cursor":ID|null}: total counts every agent matching the
// filters, over all pages (counted afresh on a first page; while paging, up to 10 s old:
// agent_totals.h).
void List(http::Exchange& ex, ManagerServer& server) {
  std::string error = "malformed query";
  const std::optional<proto::QueryParams> params =
      proto::QueryParams::Parse(ex.raw_query(), &error);
  const std::optional<AgentQuery> query =
      params ? ParseAgentQuery(*params, server.config(), &error) : std::nullopt;
  if (!query) {
    ex.Error(400, error);
    return;
  }
  struct Result {
    absl::StatusOr<AgentPage> page;
    absl::StatusOr<uint64_t> total;
    bool counted = false;
  };
  const std::optional<uint64_t> known = server.agent_totals().Find(*query, server.shard().now_ms());
  StoreJob<Result>(
      ex, server, {},
      [q = *query, known](StoreConnection& c) {
        Result r{.page = c.ListAgents(q), .total = known.value_or(0)};
        if (r.page.ok() && !known) {
          r.total = c.CountAgents(q);
          r.counted = true;
        }
        return r;
      },
      [&server = server, q = *query](http::Exchange& e, Result r) {
        if (!r.page.ok() || !r.total.ok()) {
          AnswerStoreError(e, server, r.page.ok() ? r.total.status() : r.page.status());
          return;
        }
        if (r.counted) {
          server.agent_totals().Remember(q, *r.total, server.shard().now_ms());
        }
        json list = json::array();
        for (const AgentRecord& a : r.page->agents) {
          list.push_back(AgentJson(a, server.FindLink(a.agent_id)));
        }
        e.Json(200, json{{"agents", list},
                         {"total", *r.total},
                         {"next_cursor", r.page->next.empty() ? json(nullptr) : json(r.page->next)}}
                            .dump() +
                        "\n");
      });
}

void Show(http::Exchange& ex, ManagerServer& server) {
  WithAgent(ex, server, [&server = server](http::Exchange& e, const AgentRecord& r) {
    e.Json(200, AgentJson(r, server.FindLink(r.agent_id)).dump() + "\n");
  });
}

}  // namespace

void AddAgentRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/agents", [&server = server](http::Exchange& ex) { List(ex, server); });
  router.Add("GET", "/api/v1/agents/{id}",
             [&server = server](http::Exchange& ex) { Show(ex, server); });
}

}  // namespace camtunnel::manager::admin
