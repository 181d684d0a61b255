// One control connection to the gateway (PROTOCOL.md sections 4-7), from dial to close:
// upgrade, gateway-proof check, HELLO/WELCOME, heartbeats, OPEN/GOAWAY/ERROR, and in plain mode
// the per-frame MACs. A session is single-use: after it ends, the agent makes a new one.
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
#include "agent/gateway_dialer.h"
#include "agent/identity.h"
#include "agent/tls_transport.h"
#include "proto/control_frame.h"

namespace camtunnel::agent {

inline constexpr std::string_view kAgentVersion = "camtunnel-agent/0.1.0";

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

class ControlSession {
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

  void OnDialed(DialOutcome outcome, std::unique_ptr<Transport> transport,
                const proto::ResponseHead* head, std::span<const uint8_t> leftover);
  bool BeginSession(const proto::ResponseHead& head);
  void SendHello();
  void SendFrame(proto::FrameBuilder& frame);
  // Sends ERROR `code` and ends the session (a protocol violation by the gateway).
  void Fail(proto::ErrorCode code, std::string detail);
  void Pump();
  bool Feed(std::span<const uint8_t> bytes);
  bool HandleFrame(proto::Frame& frame);
  void HandleWelcome(const proto::Frame& frame);
  void HandleOpen(const proto::Frame& frame);
  void HandleSpare(const proto::Frame& frame);
  void OnHeartbeatTick();
  void End(SessionEnd end);
  void UpdateInterest();

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget target_;
  const AgentIdentity& identity_;
  Delegate& delegate_;
  SessionTimings timings_;
  State state_ = State::kIdle;

  proto::Nonce agent_nonce_{};
  std::optional<proto::FrameSealer> sealer_;  // plain mode only
  std::optional<proto::FrameOpener> opener_;
  proto::FrameDecoder decoder_;
  std::vector<uint8_t> out_;  // encoded frames not yet written
  IoStatus read_wait_ = IoStatus::kWantRead;
  IoStatus write_wait_ = IoStatus::kOk;
  int pump_depth_ = 0;  // >1: re-entered from a frame handler; the outer call keeps reading

  uint32_t heartbeat_ms_ = 0;
  int64_t last_rx_ms_ = 0;
  int64_t last_tx_ms_ = 0;
  uint64_t next_ping_seq_ = 1;
  uint64_t outstanding_ping_seq_ = 0;
  int64_t outstanding_ping_ms_ = 0;

  std::unique_ptr<GatewayDialer> dialer_;
  Timer handshake_timer_;
  Timer heartbeat_timer_;
  Timer end_timer_;  // delivers OnSessionEnded from the loop
  std::optional<SessionEnd> pending_end_;
  std::unique_ptr<Transport> transport_;
  IoWatch watch_;  // after transport_: unwatched before the socket closes
};

}  // namespace camtunnel::agent
