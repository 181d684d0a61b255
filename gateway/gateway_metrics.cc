#include "gateway/gateway_metrics.h"

#include <openssl/crypto.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "gateway/gateway_collectable.h"
#include "metrics/exposition.h"
#include "metrics/process_collectable.h"

#ifndef CAMTUNNEL_VERSION
#define CAMTUNNEL_VERSION "unknown"
#endif

namespace camtunnel::gateway {

void ShardMetrics::CountFrontend(RequestKind p, int status) {
  for (size_t i = 0; i < kFrontendStatuses.size(); ++i) {
    if (kFrontendStatuses[i] == status) {
      frontend_requests[static_cast<size_t>(p)][i].Add();
      return;
    }
  }
}

namespace {

// What is fixed for the life of the process, as prometheus-cpp instruments in a Registry: set
// once at the first scrape, collected (under the Registry's own lock) on each. Leaked on
// purpose: a scrape may still run on a shard while static destructors run at exit.
const prometheus::Registry& ProcessRegistry() {
  static const prometheus::Registry* const registry = [] {
    auto* r = new prometheus::Registry();
    prometheus::BuildGauge()
        .Name("camtunnel_build_info")
        .Help("Always 1; the labels name the gateway's version and its OpenSSL.")
        .Register(*r)
        .Add({{"version", CAMTUNNEL_VERSION}, {"openssl", OpenSSL_version(OPENSSL_VERSION_STRING)}})
        .Set(1);
    return r;
  }();
  return *registry;
}

}  // namespace

std::string RenderMetrics(const std::vector<const ShardMetrics*>& shards,
                          const GatewayFacts& facts) {
  const GatewayCollectable cells(shards, facts);
  const metrics::ProcessCollectable process("gateway");
  const prometheus::Collectable* const scrape[] = {&cells, &ProcessRegistry(), &process};
  return metrics::Scrape(scrape);
}

void GatewayFacts::AddShard(const GatewayFacts& shard) {
  shards += shard.shards;
  shard_connections += shard.shard_connections;
  stale_completions += shard.stale_completions;
  buffers_in_use += shard.buffers_in_use;
  buffers_capacity += shard.buffers_capacity;
  buffers_published += shard.buffers_published;
  buffer_shortages += shard.buffer_shortages;
  buffer_bytes = shard.buffer_bytes;
  draining = std::max(draining, shard.draining);
  handshakes_paced += shard.handshakes_paced;
  ktls_available = shard.ktls_available;
}

}  // namespace camtunnel::gateway
