// Non-blocking TCP connect to a host: resolution off the loop (resolver.h), afresh for every
// connection (a gateway that moved is found on the next reconnect), then every address in
// order until one accepts (a dual-stack name whose first address is unreachable must work).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/event_loop.h"
#include "agent/resolver.h"

namespace camtunnel::agent {

// The owner enforces its overall deadline by destroying the connector; `attempt_timeout_ms`
// only bounds one address so the next one gets a chance. `done(fd, 0, "")` hands over a
// connected non-blocking socket (TCP_NODELAY set: control frames and RTSP interleaved packets
// are small and latency-bound); `done(-1, errno, detail)` reports the failed lookup or the last
// address's error, `detail` a one-line text naming the host. `done` is called from the loop
// (never from Start), last, and may destroy the connector.
class TcpConnector {
 public:
  using Done = std::function<void(int fd, int error, const std::string& detail)>;

  explicit TcpConnector(EventLoop& loop) : loop_(loop), resolver_(loop) {}
  ~TcpConnector();
  TcpConnector(const TcpConnector&) = delete;
  TcpConnector& operator=(const TcpConnector&) = delete;

  // `host`: a name or an address literal (IPv6 without brackets).
  void Start(const std::string& host, uint16_t port, int64_t attempt_timeout_ms, Done done);
  // Abandons an attempt in progress; `done` is not called.
  void Cancel();

 private:
  void OnResolved(int error, std::vector<SocketAddress> addresses, std::string detail);
  void TryNext();
  void OnWritable();
  void CloseAttempt();
  void Finish(int fd, int error);

  EventLoop& loop_;
  std::string host_;
  uint16_t port_ = 0;
  std::vector<SocketAddress> addresses_;
  size_t next_ = 0;
  int64_t attempt_timeout_ms_ = 0;
  int fd_ = -1;
  int last_error_ = ECONNREFUSED;
  std::string last_address_;
  Done done_;
  Resolver resolver_;
  IoWatch watch_;
  Timer attempt_timer_;
};

}  // namespace camtunnel::agent
