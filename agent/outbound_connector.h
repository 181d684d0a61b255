// A TCP connection to a server the agent talks to (gateway, manager, activation server):
// straight to the server, or through an HTTP CONNECT proxy (http_proxy.h). Either way the
// result is a connected socket on which the TLS handshake (or plain upgrade) can start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/event_loop.h"
#include "agent/http_proxy.h"
#include "agent/tcp_connector.h"

namespace camtunnel::agent {

class OutboundConnector {
 public:
  // As TcpConnector::Done. A proxy that refuses the CONNECT gives EACCES (401/403/407) or
  // ECONNREFUSED (any other status), with the proxy's status line in `detail`.
  using Done = TcpConnector::Done;

  explicit OutboundConnector(EventLoop& loop) : loop_(loop), tcp_(loop) {}
  ~OutboundConnector() { Cancel(); }
  OutboundConnector(const OutboundConnector&) = delete;
  OutboundConnector& operator=(const OutboundConnector&) = delete;

  // `proxy` null: direct. No deadline of its own beyond `attempt_timeout_ms` per address: the
  // owner destroys the connector. `done` is called from the loop, last; it may destroy this.
  void Start(const std::string& host, uint16_t port, std::shared_ptr<const ProxyConfig> proxy,
             int64_t attempt_timeout_ms, Done done);
  void Cancel();

 private:
  void OnProxyConnected(int fd, int error, const std::string& detail);
  void StepProxy();
  void Finish(int fd, int error, const std::string& detail);

  EventLoop& loop_;
  std::string host_;
  uint16_t port_ = 0;
  std::shared_ptr<const ProxyConfig> proxy_;
  Done done_;
  TcpConnector tcp_;
  int fd_ = -1;  // the proxy connection until the CONNECT succeeds
  std::string request_;
  size_t sent_ = 0;
  std::string reply_;
  IoWatch watch_;  // after fd_: stopped before it closes
};

}  // namespace camtunnel::agent
