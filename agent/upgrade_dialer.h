// Opens one connection to a gateway or to the manager and performs the camtunnel/1 HTTP upgrade
// (PROTOCOL.md sections 4, 8 and 10.2): resolve, TCP connect, TLS handshake, send the request
// head, read the response head. Shared by the control session, the manager session and every
// tunnel's data connection, so each uses its URL's scheme, host, port and trust the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "agent/event_loop.h"
#include "agent/http_proxy.h"
#include "agent/outbound_connector.h"
#include "agent/tls_transport.h"
#include "proto/http_head.h"

namespace camtunnel::agent {

struct GatewayTarget {
  std::string host;  // to resolve (IPv6 without brackets)
  uint16_t port = 0;
  std::string host_header;                   // "host[:port]" as sent in Host:
  std::string url;                           // as configured, for logs
  std::shared_ptr<const ProxyConfig> proxy;  // null: connect directly
};

struct DialOutcome {
  enum class Kind {
    kUpgraded,     // 101: the transport is handed over
    kRejected,     // another HTTP status; `status`, maybe `retry_after_ms`
    kClosedEarly,  // closed or reset before a response head: the gateway is busy
    kFailed,       // resolution, TCP or proxy (`error` is the errno), TLS or a bad response
  };
  Kind kind = Kind::kFailed;
  int status = 0;
  int error = 0;
  int64_t retry_after_ms = -1;
  std::string detail;  // for logs
};
std::string DescribeOutcome(const DialOutcome& outcome);

class UpgradeDialer {
 public:
  // Builds the request head once the handshake is done (the data proof needs the exporter of
  // this very connection).
  using BuildRequest = std::function<std::string(Transport& transport)>;
  // On kUpgraded `transport` is non-null, `head` is the parsed 101 and `leftover` holds bytes
  // that followed it; `head` and `leftover` are valid only during the call. Called last; may
  // destroy the dialer.
  using Done =
      std::function<void(DialOutcome outcome, std::unique_ptr<Transport> transport,
                         const proto::ResponseHead* head, std::span<const uint8_t> leftover)>;

  UpgradeDialer(EventLoop& loop, TransportFactory& factory, const GatewayTarget& target)
      : loop_(loop), factory_(factory), target_(target), connector_(loop) {}
  UpgradeDialer(const UpgradeDialer&) = delete;
  UpgradeDialer& operator=(const UpgradeDialer&) = delete;

  // Never calls `done` synchronously. No deadline of its own: the owner destroys the dialer.
  void Start(BuildRequest build_request, Done done);

 private:
  enum class State { kIdle, kConnecting, kHandshake, kSending, kReading, kDone };
  void OnConnected(int fd, int error, const std::string& detail);
  void Step();
  void Finish(DialOutcome outcome);

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget target_;
  State state_ = State::kIdle;
  BuildRequest build_request_;
  Done done_;
  std::string request_;
  size_t request_sent_ = 0;
  std::string response_;
  OutboundConnector connector_;
  std::unique_ptr<Transport> transport_;
  IoWatch watch_;  // after transport_: unwatched before the socket closes
};

}  // namespace camtunnel::agent
