// agentsim's own Prometheus endpoint (--metrics_listen): GET /metrics on the shared HTTP server
// (http/server.h), on the shard, rendered by a callback on the same thread, so the counters
// need no synchronisation. Keep-alive, so a scraper reuses its connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "http/server.h"
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
  MetricsServer() = default;

  std::unique_ptr<http::Server> http_;  // before the listener, which hands it connections
  std::unique_ptr<runtime::Listener> listener_;
};

}  // namespace camtunnel::agentsim
