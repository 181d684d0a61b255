// Name resolution and non-blocking TCP connect, trying every address in order (a dual-stack
// gateway name whose first address is unreachable must still work).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/event_loop.h"

namespace camtunnel::agent {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string ToString() const;  // "1.2.3.4:80" or "[::1]:80"
};

// Resolves `host` (a name or an address literal, IPv6 without brackets) for TCP. Returns 0, or
// an errno-style code (EHOSTUNREACH when the name does not resolve) with `*error` set.
// TODO: getaddrinfo blocks the loop thread; camera DNS can take seconds, so resolution must move
// to a helper thread (or getaddrinfo_a) before this agent runs with named gateways in the field.
// Acceptable now: the gateway is usually an address, and services are loopback literals.
int ResolveAddresses(const std::string& host, uint16_t port, std::vector<SocketAddress>* out,
                     std::string* error);

// Connects to the first address that accepts. The owner enforces its overall deadline by
// destroying the connector; `attempt_timeout_ms` only bounds one address so the next one gets a
// chance. `done(fd, 0)` hands over a connected non-blocking socket (TCP_NODELAY set: control
// frames and RTSP interleaved packets are small and latency-bound); `done(-1, errno)` reports
// the last address's error. `done` is called from the loop (never from Start), last, and may
// destroy the connector.
class TcpConnector {
 public:
  using Done = std::function<void(int fd, int error)>;

  explicit TcpConnector(EventLoop& loop) : loop_(loop) {}
  ~TcpConnector();
  TcpConnector(const TcpConnector&) = delete;
  TcpConnector& operator=(const TcpConnector&) = delete;

  void Start(std::vector<SocketAddress> addresses, int64_t attempt_timeout_ms, Done done);
  // Abandons an attempt in progress; `done` is not called.
  void Cancel();

 private:
  void TryNext();
  void OnWritable();
  void CloseAttempt();
  void Finish(int fd, int error);

  EventLoop& loop_;
  std::vector<SocketAddress> addresses_;
  size_t next_ = 0;
  int64_t attempt_timeout_ms_ = 0;
  int fd_ = -1;
  int last_error_ = ECONNREFUSED;
  Done done_;
  IoWatch watch_;
  Timer attempt_timer_;
};

}  // namespace camtunnel::agent
