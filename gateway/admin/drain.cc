// /api/v1/drain: POST starts a drain and keeps the process up, not ready (a SIGTERM later still
// exits once drained); GET says how far it is.
#include <nlohmann/json.hpp>

#include "gateway/admin/admin_routes.h"
#include "gateway/fan_out.h"
#include "gateway/gateway_shard.h"

namespace camtunnel::gateway::admin {
namespace {

struct Status {
  bool draining = false;
  bool drained = false;
  int64_t tunnels_open = 0;
  size_t agents = 0;
};

Status StatusOf(GatewayShard& gw) {
  return Status{gw.draining(), gw.drained(), gw.metrics().tunnels_open.Get(),
                gw.registry().online()};
}

void Drain(http::Exchange& ex, GatewayShard& gw) {
  const bool start = ex.method() == "POST";
  // Every other shard first, this one (which answers /readyz) when they all have: once /readyz
  // says "draining", no shard accepts any more.
  const unsigned self = gw.index();
  auto each = [start, self](GatewayShard& shard) {
    if (start && shard.index() != self) {
      shard.Drain({});
    }
    return StatusOf(shard);
  };
  FanOut<Status>(gw, each, [&gw, reply = ex.Later(), start](std::vector<std::optional<Status>> r) {
    if (!reply.alive()) {
      return;
    }
    if (start) {
      gw.Drain({});
      r[gw.index()] = StatusOf(gw);
    }
    Status all{true, true, 0, 0};
    for (const auto& one : r) {
      if (!one) {
        ShardUnreachable(reply);
        return;
      }
      all.draining = all.draining && one->draining;
      all.drained = all.drained && one->drained;
      all.tunnels_open += one->tunnels_open;
      all.agents += one->agents;
    }
    const nlohmann::json body = {{"draining", all.draining},
                                 {"drained", all.drained},
                                 {"tunnels_open", all.tunnels_open},
                                 {"agents", all.agents}};
    reply.Json(start ? 202 : 200, body.dump() + "\n");
  });
}

}  // namespace

void AddDrainRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/api/v1/drain", [&gw](http::Exchange& ex) { Drain(ex, gw); });
  router.Add("POST", "/api/v1/drain", [&gw](http::Exchange& ex) { Drain(ex, gw); });
}

}  // namespace camtunnel::gateway::admin
