// The connected agents: GET /api/v1/agents (paged, by id), GET /api/v1/agents/{id}, DELETE
// /api/v1/agents/{id} (kick), POST /api/v1/agents/{id}/probe (camera health through the
// tunnel). One agent's requests run on its home shard.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "gateway/admin/admin_routes.h"
#include "gateway/camera_probe.h"
#include "gateway/control_session.h"
#include "gateway/fan_out.h"
#include "gateway/gateway_shard.h"
#include "proto/http_query.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway::admin {
namespace {

std::string_view StateOf(const ControlSession& s) { return s.closing() ? "closing" : "connected"; }

nlohmann::json AgentJson(GatewayShard& gw, std::string_view id, const ControlSession& s) {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& e : s.services()) {
    services.push_back({{"name", e.name}, {"port", e.port}});
  }
  const AgentStats* stats = gw.registry().Stats(id);
  const AgentStats none;
  const AgentStats& st = stats != nullptr ? *stats : none;
  return {{"id", std::string(id)},
          {"state", std::string(StateOf(s))},
          {"home_shard", gw.shard().id()},
          {"remote", s.remote()},
          {"version", s.version()},
          {"connected_since_ms", s.connected_wall_ms()},
          {"heartbeat_rtt_us", s.last_rtt_us()},
          {"last_status", s.last_status()},
          {"services", services},
          {"open_tunnels", st.open_tunnels},
          {"tunnels_total", st.tunnels},
          {"bytes_to_camera", st.bytes_to_camera},
          {"bytes_to_client", st.bytes_to_client},
          {"reconnects", st.sessions > 0 ? st.sessions - 1 : 0}};
}

// Query: limit=<1..1000> (default 100), cursor=<agent id> (the previous page's next_cursor:
// agents after it in id order), state=connected|closing. Ordered by id, so pages are stable
// while agents come and go: an agent is never listed twice, and one that connects meanwhile
// shows up if its id sorts after the cursor.
void ListAgents(http::Exchange& ex, GatewayShard& gw) {
  size_t limit = kDefaultPage;
  std::string cursor;
  std::string state;
  std::string error;
  const std::optional<proto::QueryParams> query = proto::QueryParams::Parse(ex.raw_query(), &error);
  if (!query) {
    ex.Error(400, error);
    return;
  }
  for (const auto& [key, value] : query->pairs()) {
    if (key == "limit") {
      if (!absl::SimpleAtoi(value, &limit) || limit == 0 || limit > kMaxPage) {
        error = "limit must be 1..1000";
      }
    } else if (key == "cursor") {
      if (!value.empty() && !proto::IsCanonicalAgentId(value)) {
        error = "cursor must be an agent id (the previous page's next_cursor)";
      }
      cursor = value;
    } else if (key == "state") {
      if (value != "connected" && value != "closing") {
        error = "state must be connected or closing";
      }
      state = value;
    } else {
      error = "query takes limit, cursor and state";
    }
    if (!error.empty()) {
      break;
    }
  }
  if (!error.empty()) {
    ex.Error(400, error);
    return;
  }
  // Each shard sorts its own matches and sends at most one page of them; the page is the first
  // `limit` of their union.
  struct Part {
    std::vector<std::pair<std::string, nlohmann::json>> rows;
    size_t total = 0;     // sessions in the state asked for
    size_t matching = 0;  // of those, after the cursor
  };
  auto each = [limit, cursor, state](GatewayShard& shard) {
    Part part;
    std::vector<std::pair<std::string_view, const ControlSession*>> match;
    shard.registry().ForEachSession([&](std::string_view id, const ControlSession* s) {
      if (!state.empty() && StateOf(*s) != state) {
        return;
      }
      ++part.total;
      if (cursor.empty() || id > std::string_view(cursor)) {
        match.emplace_back(id, s);
      }
    });
    part.matching = match.size();
    // Only the page's first `limit` ids need ordering.
    const size_t n = std::min(limit, match.size());
    std::partial_sort(match.begin(), match.begin() + static_cast<std::ptrdiff_t>(n), match.end());
    for (size_t i = 0; i < n; ++i) {
      part.rows.emplace_back(std::string(match[i].first),
                             AgentJson(shard, match[i].first, *match[i].second));
    }
    return part;
  };
  FanOut<Part>(gw, each, [reply = ex.Later(), limit](std::vector<std::optional<Part>> parts) {
    if (!reply.alive()) {
      return;
    }
    std::vector<std::pair<std::string, nlohmann::json>> rows;
    size_t total = 0;
    size_t matching = 0;
    for (auto& part : parts) {
      if (!part) {
        ShardUnreachable(reply);
        return;
      }
      total += part->total;
      matching += part->matching;
      std::move(part->rows.begin(), part->rows.end(), std::back_inserter(rows));
    }
    const size_t n = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      list.push_back(std::move(rows[i].second));
    }
    nlohmann::json page = {{"agents", list}, {"total", total}};
    page["next_cursor"] = matching > n ? nlohmann::json(rows[n - 1].first) : nlohmann::json();
    reply.Json(200, page.dump() + "\n");
  });
}

// GET shows one agent; DELETE kicks it (GOAWAY, then close); the agent reconnects after its
// backoff unless its key was revoked meanwhile.
void Agent(http::Exchange& ex, GatewayShard& gw) {
  const std::string_view id = ex.param("id");
  if (MovedToHomeShard(ex, gw, id)) {
    return;
  }
  ControlSession* s = gw.registry().Find(id);
  if (s == nullptr) {
    ex.Error(404, "agent not connected");
  } else if (ex.method() == "GET") {
    ex.Json(200, AgentJson(gw, id, *s).dump() + "\n");
  } else {
    s->GoAway("kicked by the operator", 0);
    ex.Json(200, R"({"kicked":true})"
                 "\n");
  }
}

// Query: service=<name> (default rtsp) and path=<absolute path> (default /). Values are
// restricted to a safe alphabet, since they end up in a request line.
void Probe(http::Exchange& ex, GatewayShard& gw) {
  const std::string_view id = ex.param("id");
  if (!proto::IsCanonicalAgentId(id)) {
    ex.Error(400, "agent id is not canonical");
    return;
  }
  if (MovedToHomeShard(ex, gw, id)) {
    return;
  }
  std::string error;
  const std::optional<proto::QueryParams> query = proto::QueryParams::Parse(ex.raw_query(), &error);
  if (!query) {
    ex.Error(400, error);
    return;
  }
  std::string service = "rtsp";
  std::string path = "/";
  for (const auto& [key, value] : query->pairs()) {
    for (char c : value) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '.' && c != '_' &&
          c != '-') {
        ex.Error(400, "query values may hold only [A-Za-z0-9/._-]");
        return;
      }
    }
    if (key == "service") {
      service = value;
    } else if (key == "path" && value.starts_with("/")) {
      path = value;
    } else {
      ex.Error(400, "query takes service=<name> and path=/<path>");
      return;
    }
  }
  CameraProbe* probe = CameraProbe::Start(
      gw, std::string(id), service, path,
      [reply = ex.Later()](int status, std::string body) { reply.Json(status, body); });
  if (!ex.answered()) {
    ex.OnAbort([probe] { probe->Cancel(); });
  }
}

}  // namespace

void AddAgentRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/api/v1/agents", [&gw](http::Exchange& ex) { ListAgents(ex, gw); });
  router.Add("GET", "/api/v1/agents/{id}", [&gw](http::Exchange& ex) { Agent(ex, gw); });
  router.Add("DELETE", "/api/v1/agents/{id}", [&gw](http::Exchange& ex) { Agent(ex, gw); });
  router.Add("POST", "/api/v1/agents/{id}/probe", [&gw](http::Exchange& ex) { Probe(ex, gw); });
}

}  // namespace camtunnel::gateway::admin
