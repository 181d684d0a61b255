// A spare data connection (PROTOCOL.md section 8.1): dialed on the gateway's SPARE with the
// data head of that id and nonce, then idle until the gateway writes OPEN on it. The OPEN's
// tunnel id, service and the bytes after the frame go to the owner, which runs the tunnel on
// this connection (Tunnel::StartOnSpare); anything else ends the spare.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "agent/event_loop.h"
#include "agent/identity.h"
#include "agent/tls_transport.h"
#include "agent/upgrade_dialer.h"
#include "proto/control_frame.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

class SpareConnection {
 public:
  struct Callbacks {
    // The gateway's OPEN arrived on the spare. Called last; may destroy the spare.
    std::function<void(proto::TunnelId tunnel, const std::string& service,
                       std::unique_ptr<Transport> connection, std::span<const uint8_t> rest)>
        open;
    // The dial failed, the gateway closed the spare or sent something else. Called last, from
    // the loop; may destroy the spare.
    std::function<void(const std::string& why)> ended;
  };

  SpareConnection(EventLoop& loop, TransportFactory& factory, const GatewayTarget& gateway,
                  const AgentIdentity& identity, proto::TunnelId id, const proto::Nonce& nonce,
                  Callbacks callbacks, int64_t dial_deadline_ms);
  SpareConnection(const SpareConnection&) = delete;
  SpareConnection& operator=(const SpareConnection&) = delete;

  void Start();
  proto::TunnelId id() const { return id_; }

 private:
  void OnDialed(DialOutcome outcome, std::unique_ptr<Transport> transport,
                std::span<const uint8_t> leftover);
  // False once the spare was handed over or ended (it may be destroyed by then).
  bool OnBytes(std::span<const uint8_t> bytes);
  void OnReadable();
  void End(const std::string& why);

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget gateway_;
  const AgentIdentity& identity_;
  proto::TunnelId id_;
  proto::Nonce nonce_;
  Callbacks callbacks_;
  int64_t dial_deadline_ms_;
  proto::FrameDecoder decoder_;
  std::unique_ptr<UpgradeDialer> dialer_;
  Timer deadline_;
  Timer ended_timer_;
  std::unique_ptr<Transport> connection_;
  IoWatch watch_;  // after the transport: unwatched before its socket closes
};

}  // namespace camtunnel::agent
