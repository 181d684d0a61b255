// The revocation denylist. GET /api/v1/denylist lists it; PUT /api/v1/denylist/{id} revokes an
// agent (its live session is ended at once and every later connection with its key gets 401);
// DELETE /api/v1/denylist/{id} takes it off again (a reactivated camera).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gateway/admin/admin_routes.h"
#include "gateway/control_session.h"
#include "gateway/fan_out.h"
#include "gateway/gateway_shard.h"
#include "proto/identifiers.h"
#include "runtime/log.h"

namespace camtunnel::gateway::admin {
namespace {

void List(http::Exchange& ex, GatewayShard& gw) {
  std::vector<std::string> ids(gw.denylist().begin(), gw.denylist().end());
  std::sort(ids.begin(), ids.end());
  ex.Json(200, nlohmann::json{{"agents", ids}}.dump() + "\n");
}

// Every shard keeps its own copy (read at each handshake without a lock); the agent's home
// shard also ends its live session. A shard that cannot be reached makes the answer 503, so the
// caller (the manager) retries until every copy has it.
void Change(http::Exchange& ex, GatewayShard& gw) {
  const std::string id(ex.param("id"));
  if (!proto::IsCanonicalAgentId(id)) {
    ex.Error(400, "not a canonical agent id");
    return;
  }
  const bool deny = ex.method() == "PUT";
  auto each = [deny, id](GatewayShard& shard) {
    if (!deny) {
      return shard.Allow(id);
    }
    shard.Deny(id);
    if (ControlSession* s = shard.registry().Find(id); s != nullptr) {
      s->GoAway("revoked", 0);
      return true;
    }
    return false;
  };
  FanOut<bool>(gw, each, [reply = ex.Later(), deny, id](std::vector<std::optional<bool>> r) {
    if (!reply.alive()) {
      return;
    }
    bool any = false;
    for (const auto& one : r) {
      if (!one) {
        ShardUnreachable(reply);
        return;
      }
      any = any || *one;
    }
    if (deny) {
      runtime::LogEvent(runtime::LogLevel::kInfo, "agent_revoked",
                        {runtime::Kv("agent", id), runtime::Kv("kicked", any)});
      reply.Json(200, nlohmann::json{{"denied", id}, {"kicked", any}}.dump() + "\n");
    } else {
      runtime::LogEvent(runtime::LogLevel::kInfo, "agent_unrevoked", {runtime::Kv("agent", id)});
      reply.Json(any ? 200 : 404,
                 nlohmann::json{{"allowed", id}, {"was_denied", any}}.dump() + "\n");
    }
  });
}

}  // namespace

void AddDenylistRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/api/v1/denylist", [&gw](http::Exchange& ex) { List(ex, gw); });
  router.Add("PUT", "/api/v1/denylist/{id}", [&gw](http::Exchange& ex) { Change(ex, gw); });
  router.Add("DELETE", "/api/v1/denylist/{id}", [&gw](http::Exchange& ex) { Change(ex, gw); });
}

}  // namespace camtunnel::gateway::admin
