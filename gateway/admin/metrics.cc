// GET /metrics: every shard's gauges from its own thread; the counters are read directly
// (relaxed atomic cells with one writer each) when RenderMetrics collects them. The process's
// own facts are read there too, once per scrape.
#include "gateway/admin/admin_routes.h"
#include "gateway/fan_out.h"
#include "gateway/gateway_shard.h"
#include "runtime/log.h"

namespace camtunnel::gateway::admin {
namespace {

constexpr std::string_view kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";

void Metrics(http::Exchange& ex, GatewayShard& gw) {
  if (gw.gateway() == nullptr) {
    ex.Respond(200, kPrometheusText, gw.RenderMetricsText());
    return;
  }
  auto each = [](GatewayShard& shard) { return shard.CollectFacts(); };
  FanOut<GatewayFacts>(
      gw, each, [&gw, reply = ex.Later()](std::vector<std::optional<GatewayFacts>> r) {
        if (!reply.alive()) {
          return;
        }
        GatewayFacts facts;
        std::vector<const ShardMetrics*> cells;
        Gateway& gateway = *gw.gateway();
        for (unsigned i = 0; i < r.size(); ++i) {
          if (!r[i]) {
            ShardUnreachable(reply);
            return;
          }
          facts.AddShard(*r[i]);
          cells.push_back(&gateway.shard(i).metrics());
        }
        facts.log_lines_suppressed = static_cast<double>(runtime::SuppressedLogLines());
        reply.Respond(200, kPrometheusText, RenderMetrics(cells, facts));
      });
}

}  // namespace

void AddMetricsRoutes(http::Router& router, GatewayShard& gw) {
  router.Add("GET", "/metrics", [&gw](http::Exchange& ex) { Metrics(ex, gw); });
}

}  // namespace camtunnel::gateway::admin
