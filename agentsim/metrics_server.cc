#include "agentsim/metrics_server.h"

namespace camtunnel::agentsim {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Open(runtime::Shard& shard,
                                                                   const std::string& address,
                                                                   Render render) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  http::Router router;
  router.Add("GET", "/metrics", [render = std::move(render)](http::Exchange& ex) {
    ex.Respond(200, "text/plain; version=0.0.4; charset=utf-8", render());
  });
  server->http_ = std::make_unique<http::Server>(shard, std::move(router), http::ServerOptions{});
  http::Server* http = server->http_.get();
  auto listener = runtime::Listener::Open(shard, address, [http](int fd) { http->Accept(fd); });
  if (!listener.ok()) {
    return listener.status();
  }
  server->listener_ = std::move(*listener);
  return server;
}

}  // namespace camtunnel::agentsim
