// The relocation table (gateway/relocations.h). GET /api/v1/relocations lists it (first 1000 by
// id); PUT /api/v1/relocations/{id} with {"frontend":"rtsp://host:port"} records where the
// manager moved an agent; DELETE /api/v1/relocations/{id} forgets it. An agent's entry lives on
// its home shard, where its media requests are routed.
#include "gateway/relocations.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gateway/admin/admin_routes.h"
#include "gateway/fan_out.h"
#include "gateway/gateway_shard.h"
#include "proto/identifiers.h"
#include "runtime/log.h"

namespace camtunnel::gateway::admin {
namespace {

constexpr size_t kMaxRelocationBody = 1024;

using Rows = std::vector<std::pair<std::string, nlohmann::json>>;

// One shard's relocation entries, by id.
Rows RelocationRows(GatewayShard& gw) {
  Rows rows;
  const uint64_t now = gw.shard().now_ms();
  gw.relocations().ForEach([&](std::string_view id, std::string_view to, uint64_t expires) {
    rows.emplace_back(std::string(id),
                      nlohmann::json{{"agent", std::string(id)},
                                     {"frontend", std::string(to)},
                                     {"expires_in_ms", expires > now ? expires - now : 0}});
  });
  return rows;
}

void List(http::Exchange& ex, GatewayShard& gw) {
  FanOut<Rows>(gw, RelocationRows, [reply = ex.Later()](std::vector<std::optional<Rows>> parts) {
    if (!reply.alive()) {
      return;
    }
    Rows rows;
    for (auto& part : parts) {
      if (!part) {
        ShardUnreachable(reply);
        return;
      }
      std::move(part->begin(), part->end(), std::back_inserter(rows));
    }
    const size_t n = std::min<size_t>(rows.size(), kMaxPage);
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      list.push_back(std::move(rows[i].second));
    }
    reply.Json(200, nlohmann::json{{"relocations", list}, {"total", rows.size()}}.dump() + "\n");
  });
}

void Put(http::Exchange& ex, GatewayShard& gw, std::string_view body) {
  using nlohmann::json;
  const std::string_view agent_id = ex.param("id");
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("frontend") || !doc["frontend"].is_string()) {
    ex.Error(400, R"(body must be {"frontend":"rtsp://host:port"})");
    return;
  }
  const std::string& frontend = doc["frontend"].get_ref<const std::string&>();
  const AgentStats* stats = gw.registry().Stats(agent_id);
  switch (gw.relocations().Put(agent_id, frontend, stats != nullptr ? stats->sessions : 0,
                               gw.shard().now_ms())) {
    case Relocations::PutResult::kOk:
      runtime::LogEvent(runtime::LogLevel::kInfo, "agent_relocated",
                        {runtime::Kv("agent", agent_id), runtime::Kv("to", frontend)});
      ex.Json(200, json{{"agent", agent_id}, {"frontend", frontend}}.dump() + "\n");
      return;
    case Relocations::PutResult::kBadFrontend:
      ex.Error(400, "frontend must be rtsp://host:port or http://...");
      return;
    case Relocations::PutResult::kFull:
      break;
  }
  ex.Error(503, "relocation table full");
}

void Change(http::Exchange& ex, GatewayShard& gw) {
  const std::string_view agent_id = ex.param("id");
  if (!proto::IsCanonicalAgentId(agent_id)) {
    ex.Error(400, "not a canonical agent id");
    return;
  }
  if (MovedToHomeShard(ex, gw, agent_id)) {
    return;
  }
  if (ex.method() == "DELETE") {
    const bool was = gw.relocations().Erase(agent_id);
    ex.Json(was ? 200 : 404,
            nlohmann::json{{"agent", agent_id}, {"was_relocated", was}}.dump() + "\n");
    return;
  }
  ex.ReadBody(kMaxRelocationBody,
              [&gw](http::Exchange& e, std::string_view body) { Put(e, gw, body); });
}

}  // namespace

void AddRelocationRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/api/v1/relocations", [&gw](http::Exchange& ex) { List(ex, gw); });
  router.Add("PUT", "/api/v1/relocations/{id}", [&gw](http::Exchange& ex) { Change(ex, gw); });
  router.Add("DELETE", "/api/v1/relocations/{id}", [&gw](http::Exchange& ex) { Change(ex, gw); });
}

}  // namespace camtunnel::gateway::admin
