// One control connection to the gateway (PROTOCOL.md sections 4-7), from dial to close. The
// dial, the socket and the timers are here; the link itself (gateway-proof check, HELLO/WELCOME,
// heartbeats, ERROR/GOAWAY, plain-mode MACs) is proto::ControlLink's, and this session acts on
// OPEN and SPARE. A session is single-use: after it ends, the agent makes a new one.
//
// States: kDialing -> kAwaitWelcome -> kEstablished -> kClosed. The end is reported once,
// through Delegate::OnSessionEnded, from the event loop (never from inside a handler of this
// session), so the delegate may destroy the session there.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/event_loop.h"
#include "agent/identity.h"
#include "agent/link_io.h"
#include "agent/tls_transport.h"
#include "agent/upgrade_dialer.h"
#include "proto/control_frame.h"
#include "proto/control_link.h"

namespace camtunnel::agent {

struct Welcome {
  uint32_t heartbeat_ms = 0;         // as applied (defaulted and clamped)
  uint64_t server_time_ms = 0;       // 0 if absent
  uint32_t reconnect_window_ms = 0;  // 0 if absent
};

struct SessionEnd {
  enum class Reason {
    kBusy,             // 503, an early close, or the handshake deadline: back off
    kAuthRejected,     // 401/403, or ERROR "bad proof": the key or scheme is wrong
    kBadGatewayProof,  // the 101 did not prove the gateway holds our key
    kGoaway,           // the gateway asked us to leave (and when to come back)
    kFailed,           // anything else (connect, TLS, protocol, dead session...): see detail
  };
  Reason reason = Reason::kFailed;
  bool welcomed = false;        // WELCOME had arrived: this was a real session
  int64_t retry_after_ms = -1;  // Retry-After or GOAWAY hint; -1 when none
  std::string detail;
};
std::string_view SessionEndName(SessionEnd::Reason reason);

struct SessionTimings {
  int64_t handshake_deadline_ms = 5000;  // TCP + TLS + 101 + WELCOME
  uint32_t default_heartbeat_ms = 5000;
};

class ControlSession final : private proto::ControlLink::Handler {
 public:
  class Delegate {
   public:
    virtual ~Delegate() = default;
    virtual void OnWelcome(const Welcome& welcome) = 0;
    virtual void OnOpen(proto::TunnelId tunnel, std::string_view service,
                        const proto::Nonce& nonce) = 0;
    // SPARE (PROTOCOL.md 8.1): open a spare data connection for this id and nonce.
    virtual void OnSpare(proto::TunnelId /*tunnel*/, const proto::Nonce& /*nonce*/) {}
    virtual void OnSessionEnded(const SessionEnd& end) = 0;
  };

  ControlSession(EventLoop& loop, TransportFactory& factory, const GatewayTarget& target,
                 const AgentIdentity& identity, Delegate& delegate, SessionTimings timings = {});
  ~ControlSession();
  ControlSession(const ControlSession&) = delete;
  ControlSession& operator=(const ControlSession&) = delete;

  void Start();
  bool established() const { return state_ == State::kEstablished; }
  // The numeric address of the gateway this session reached ("127.0.0.1", "::1"), empty before
  // the connection or when it cannot be read.
  std::string peer_host() const;
  // Dropped (with a debug line) unless established.
  void SendOpenFailed(proto::TunnelId tunnel, int error, std::string_view text);
  // Closes without reporting an end (agent shutdown): best-effort close_notify.
  void Close();

 private:
  enum class State { kIdle, kDialing, kAwaitWelcome, kEstablished, kClosed };

  void OnDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                const proto::ResponseHead* head, std::span<const uint8_t> leftover);
  // Checks the 101 and starts the link (HELLO goes out). False if the session ended.
  bool BeginSession(const proto::ResponseHead& head);
  void End(SessionEnd end);

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override { io_.Queue(bytes); }
  size_t QueuedLinkOutput() const override { return io_.queued(); }
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget target_;
  const AgentIdentity& identity_;
  Delegate& delegate_;
  SessionTimings timings_;
  State state_ = State::kIdle;

  proto::Nonce agent_nonce_{};
  proto::LinkProfile profile_;
  proto::ControlLink link_{profile_, *this};

  std::unique_ptr<UpgradeDialer> dialer_;
  Timer handshake_timer_;
  Timer end_timer_;  // delivers OnSessionEnded from the loop
  std::optional<SessionEnd> pending_end_;
  LinkIo io_{loop_, link_, "gateway"};
};

}  // namespace camtunnel::agent
