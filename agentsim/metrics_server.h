// agentsim's own Prometheus endpoint (--metrics_listen): GET /metrics on the shard, rendered by
// a callback on the same thread, so the counters need no synchronisation. One request per
// connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/listener.h"
#include "runtime/shard.h"

namespace camtunnel::agentsim {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  static absl::StatusOr<std::unique_ptr<MetricsServer>> Open(runtime::Shard& shard,
                                                             const std::string& address,
                                                             Render render);
  uint16_t port() const { return listener_->port(); }

 private:
  MetricsServer(runtime::Shard& shard, Render render) : shard_(shard), render_(std::move(render)) {}

  runtime::Shard& shard_;
  Render render_;
  std::unique_ptr<runtime::Listener> listener_;
};

}  // namespace camtunnel::agentsim
