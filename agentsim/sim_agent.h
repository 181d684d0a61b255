// One simulated agent's control connection (PROTOCOL.md sections 4-7), from dial to close, and
// its reconnection: TLS or plain, the upgrade, then the link that proto::ControlLink runs (the
// gateway proof checked, HELLO with the agent proof, WELCOME, heartbeats both ways, frame MACs),
// one STATUS per session (and every minute), OPEN answered by a data connection to the
// simulated camera (data_tunnel.h), GOAWAY honoured.
//
// States: kIdle -> kConnecting -> kUpgrading -> kAwaitWelcome -> kUp -> kClosing -> kIdle.
// A connection ends only through OnStreamClosed, which reports to the observer and schedules the
// next attempt: the GOAWAY delay, a random delay within WELCOME's reconnect window after a lost
// session, or exponential backoff with full jitter after a failed attempt.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agentsim/agent_identity.h"
#include "agentsim/sim_context.h"
#include "proto/control_frame.h"
#include "proto/control_link.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class SimAgent;

// The fleet: paces connection attempts and keeps the set of agents that are up.
class AgentObserver {
 public:
  virtual void OnAgentUp(SimAgent& agent) = 0;
  virtual void OnAgentDown(SimAgent& agent) = 0;
  // An attempt that was started by Connect() has finished, up or not (frees its pacing slot).
  virtual void OnAttemptEnded(SimAgent& agent) = 0;
  // The agent's reconnect delay has passed: the fleet calls Connect() when pacing allows.
  virtual void OnReconnectDue(SimAgent& agent) = 0;

 protected:
  ~AgentObserver() = default;
};

class SimAgent final : public runtime::StreamHandler, private proto::ControlLink::Handler {
 public:
  static constexpr std::string_view kVersion = "camtunnel-agentsim/0.1.0";
  static constexpr uint64_t kHandshakeTimeoutMs = 5000;
  static constexpr uint64_t kStatusIntervalMs = 60000;

  SimAgent(SimContext& ctx, AgentObserver& observer, AgentIdentity identity);
  SimAgent(const SimAgent&) = delete;
  SimAgent& operator=(const SimAgent&) = delete;

  // Starts an attempt (from kIdle only).
  void Connect();
  // Cuts the control connection now, as an agent whose camera reboots would; the agent tries
  // again after `down_ms` (churn), or like any lost session when nullopt (storm).
  void Drop(std::optional<uint64_t> down_ms);
  // End of the run: close, never reconnect.
  void Stop();

  // Managed mode: the gateway, key and key reference of ASSIGN or SWITCH. They serve the next
  // connection; a session that is up goes on with the ones it was opened with.
  void SetGateway(const UrlEndpoint& gateway, const proto::KeyRef& key_ref,
                  const proto::Digest& key);
  // Told true when a session is established and false when an established session ends (the
  // managed agent reports both to its manager).
  void set_session_listener(std::function<void(bool up)> listener) {
    session_listener_ = std::move(listener);
  }

  bool up() const { return state_ == State::kUp; }
  bool idle() const { return state_ == State::kIdle; }
  bool stopped() const { return stopped_; }
  const AgentIdentity& identity() const { return identity_; }

  // Position in the fleet's list of agents that are up (owned by the fleet).
  size_t up_slot = SIZE_MAX;

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class State : uint8_t { kIdle, kConnecting, kUpgrading, kAwaitWelcome, kUp, kClosing };

  void OnDialed(runtime::Stream* stream, int error);
  // Records why this attempt or session ended badly and closes (the end runs in OnStreamClosed).
  void Fail(std::string_view reason, int error);
  void OnUpgradeBytes(std::span<const uint8_t> bytes);
  void OnOpen(const proto::Frame& frame);
  void OnSpare(const proto::Frame& frame);
  void SendStatus();
  void OnTimer();
  void ArmTimer();

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override;
  size_t QueuedLinkOutput() const override;
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkHeartbeat(Heartbeat what) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;
  // The connection (or the connect) is gone: report it and time the next attempt.
  void Ended(int error);
  void ScheduleReconnect(uint64_t delay_ms);
  // Ends the connection from our side (Drop, Stop): both directions shut, the peer sees FIN.
  void CutConnection();
  proto::Transport transport() const;

  SimContext& ctx_;
  AgentObserver& observer_;
  AgentIdentity identity_;
  State state_ = State::kIdle;
  bool stopped_ = false;
  bool attempt_open_ = false;  // Connect() called, OnAttemptEnded not yet
  runtime::Stream* stream_ = nullptr;

  // Handshake.
  proto::Nonce agent_nonce_{};
  std::string head_;  // the gateway's answer until its head is complete
  // Session.
  proto::ControlLink link_;
  const char* pending_failure_ = nullptr;  // set before link_.Fail() for a refused OPEN/SPARE
  uint32_t reconnect_window_ms_ = 0;
  uint64_t last_status_ms_ = 0;
  // How the next attempt is timed.
  uint64_t trying_since_ms_ = 0;  // first attempt since the agent was last up
  uint32_t failures_ = 0;         // attempts in a row that did not reach WELCOME
  int64_t next_delay_ms_ = -1;    // GOAWAY's or Drop()'s delay for the next attempt
  bool had_session_ = false;      // a first session happened (later ones are reconnects)

  runtime::Timer timer_;  // handshake deadline, then heartbeats
  runtime::Timer reconnect_timer_;
  std::function<void(bool up)> session_listener_;
};

}  // namespace camtunnel::agentsim
