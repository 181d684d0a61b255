// The agent's side of one manager link (PROTOCOL.md section 10), from dial to close: the
// upgrade, the manager-proof check (before anything else is sent), HELLO with the agent's
// proof, WELCOME, heartbeats, ASSIGN (unsealed with the agent secret), SWITCH, DEACTIVATE,
// RESTART (each acknowledged by its command id, and not redone when delivered again), and STATUS
// up. TLS when the manager URL (handed out by the activation server, over
// HTTPS) is https; plain TCP when it is http, and then every frame both ways carries the
// section 7 MAC under the manager session key (PROTOCOL.md section 10.2): a forged, replayed or
// reordered frame ends the link (ERROR 4), so nobody on the path can inject DEACTIVATE or a
// SWITCH. The gateway keys in ASSIGN are sealed under the agent secret either way.
//
// States: kDialing -> kAwaitWelcome -> kEstablished -> kClosed. Single-use; the end is reported
// once, from the loop, through Delegate::OnManagerLinkEnded (which may destroy the session).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/event_loop.h"
#include "agent/link_io.h"
#include "agent/tls_transport.h"
#include "agent/upgrade_dialer.h"
#include "proto/control_frame.h"
#include "proto/control_link.h"
#include "proto/manager_link.h"

namespace camtunnel::agent {

struct ManagerLinkEnd {
  enum class Reason {
    kFailed,    // connect, TLS, timeout, protocol: back off and retry
    kRejected,  // 401/403 or ERROR bad proof: the manager does not know this secret
    kBadProof,  // the 101 did not prove the manager holds our secret
    kCommand,   // ended after DEACTIVATE or RESTART (handled by the delegate already)
  };
  Reason reason = Reason::kFailed;
  bool welcomed = false;
  // The manager fell silent (heartbeats unanswered): stopped, hung or cut off, not restarting.
  bool silent = false;
  std::string detail;
};

class ManagerSession final : private proto::ControlLink::Handler {
 public:
  class Delegate {
   public:
    virtual ~Delegate() = default;
    virtual void OnManagerWelcome(const proto::LinkWelcome& welcome) = 0;
    // A command carrying `command_id` arrived: true to act on it (the delegate has recorded the
    // id, durably, as acted on), false when it was acted on before (PROTOCOL.md 10.6).
    virtual bool TakeCommand(uint64_t command_id) = 0;
    virtual void OnAssign(std::vector<proto::AssignedStreamer> streamers) = 0;
    virtual void OnSwitch(std::string_view url) = 0;
    virtual void OnDeactivate(std::string_view reason) = 0;
    virtual void OnRestart(std::string_view reason) = 0;
    virtual void OnManagerLinkEnded(const ManagerLinkEnd& end) = 0;
  };

  struct Identity {
    std::string agent_id;
    proto::AgentSecret secret{};
  };

  ManagerSession(EventLoop& loop, TransportFactory& factory, const GatewayTarget& target,
                 const Identity& identity, Delegate& delegate, int64_t handshake_deadline_ms);
  ~ManagerSession();
  ManagerSession(const ManagerSession&) = delete;
  ManagerSession& operator=(const ManagerSession&) = delete;

  void Start();
  bool established() const { return state_ == State::kEstablished; }
  // The link runs over plain TCP with frame MACs (known once the 101 is checked).
  bool plain() const { return link_.plain(); }
  // Dropped unless established; text is cut to 4096 bytes.
  void SendStatus(std::string_view text);
  void Close();

 private:
  enum class State { kIdle, kDialing, kAwaitWelcome, kEstablished, kClosed };
  void OnDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                const proto::ResponseHead* head, std::span<const uint8_t> leftover);
  bool Begin(const proto::ResponseHead& head);
  void End(ManagerLinkEnd end);
  void Ack(uint64_t command_id, std::string_view outcome);

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override { io_.Queue(bytes); }
  size_t QueuedLinkOutput() const override { return io_.queued(); }
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget target_;
  const Identity& identity_;
  Delegate& delegate_;
  int64_t handshake_deadline_ms_;
  State state_ = State::kIdle;
  proto::Nonce agent_nonce_{};
  proto::Digest seal_key_{};
  proto::LinkProfile profile_;
  proto::ControlLink link_{profile_, *this};
  bool ended_by_command_ = false;  // DEACTIVATE or RESTART closed the link
  std::unique_ptr<UpgradeDialer> dialer_;
  Timer handshake_timer_;
  Timer end_timer_;
  std::optional<ManagerLinkEnd> pending_end_;
  LinkIo io_{loop_, link_, "manager"};
};

}  // namespace camtunnel::agent
