// The gateway's families for one scrape, as a prometheus::Collectable: Collect() sums every
// shard's lock-free cells (relaxed loads; each cell has one writer, its shard) and adds the
// gauges the scrape gathered from each shard's thread. The shards never touch prometheus-cpp:
// its Counter and Histogram lock or CAS on every update, which the data path must not pay.
//
// One is built per scrape rather than registered once: its facts are the answers of that
// scrape's fan-out, and Collect() takes no arguments.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <utility>
#include <vector>

#include "gateway/gateway_metrics.h"

namespace camtunnel::gateway {

class GatewayCollectable final : public prometheus::Collectable {
 public:
  // `shards`, at least one, in shard order (the index labels camtunnel_shard_agents_connected);
  // they must outlive the collectable. `facts` is the sum of the shards' facts.
  GatewayCollectable(std::vector<const ShardMetrics*> shards, const GatewayFacts& facts)
      : shards_(std::move(shards)), facts_(facts) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::vector<const ShardMetrics*> shards_;
  GatewayFacts facts_;
};

}  // namespace camtunnel::gateway
