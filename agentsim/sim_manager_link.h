// One simulated agent's manager link (PROTOCOL.md section 10.2), from dial to close, driven by
// the same sans-I/O core as its gateway connection (proto::ControlLink, kind kManager, keyed
// with the agent secret): the upgrade to /camtunnel/v1/manager, the manager proof checked
// before anything is sent, HELLO, WELCOME, heartbeats both ways, ASSIGN unsealed with the
// agent's key-seal key, SWITCH, DEACTIVATE and RESTART handed to its delegate and, when they
// carry a command id, acknowledged (ACK done, or duplicate for one already taken: PROTOCOL.md
// 10.6), STATUS up. TLS or plain (frame MACs) as the manager URL says.
//
// States: kIdle -> kConnecting -> kUpgrading -> kAwaitWelcome -> kUp -> kClosing -> kIdle.
// Reusable: Connect() again once the delegate was told the link ended.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agentsim/sim_context.h"
#include "agentsim/url_endpoint.h"
#include "proto/control_link.h"
#include "proto/manager_link.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

struct ManagerLinkEnd {
  enum class Command : uint8_t { kNone, kDeactivate, kRestart };
  Command command = Command::kNone;  // the link ended on this frame from the manager
  bool established = false;
  bool refused = false;          // 401/403 or ERROR bad proof: the manager does not know us
  bool upgrade_refused = false;  // 401/403: the managers have no active record of us
  bool silent = false;           // heartbeats unanswered: the manager stopped, hung or is cut off
  std::string reason;            // empty after a command or a close from our side
  int64_t retry_after_ms = -1;   // GOAWAY's
};

class ManagerLinkDelegate {
 public:
  virtual void OnManagerLinkUp(const proto::LinkWelcome& welcome) = 0;
  // A command with id `command_id` (non-zero) arrived: true to act on it, false when it was
  // taken before (delivered again after a lost ACK; it is acknowledged as a duplicate).
  virtual bool TakeCommand(uint64_t command_id) = 0;
  virtual void OnAssign(std::vector<proto::AssignedStreamer> streamers) = 0;
  virtual void OnSwitch(std::string_view url) = 0;
  // Once per Connect(), from the loop (never inside Connect), after the connection closed.
  virtual void OnManagerLinkEnded(const ManagerLinkEnd& end) = 0;

 protected:
  ~ManagerLinkDelegate() = default;
};

class SimManagerLink final : public runtime::StreamHandler, private proto::ControlLink::Handler {
 public:
  static constexpr uint64_t kHandshakeTimeoutMs = 5000;

  SimManagerLink(SimContext& ctx, ManagerLinkDelegate& delegate);
  SimManagerLink(const SimManagerLink&) = delete;
  SimManagerLink& operator=(const SimManagerLink&) = delete;

  // Dials `manager` (from kIdle only) as `agent_id` with its secret (both kept by the caller).
  void Connect(const UrlEndpoint& manager, uint32_t agent_index, const std::string& agent_id,
               const proto::AgentSecret& secret);
  // Dropped unless the link is up.
  void SendStatus(std::string_view text);
  // Ends the link from our side; the delegate still hears of the end.
  void Close();

  bool up() const { return state_ == State::kUp; }
  bool idle() const { return state_ == State::kIdle; }

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class State : uint8_t { kIdle, kConnecting, kUpgrading, kAwaitWelcome, kUp, kClosing };

  void OnDialed(runtime::Stream* stream, int error);
  void OnUpgradeBytes(std::span<const uint8_t> bytes);
  void Ack(uint64_t command_id, std::string_view outcome);
  // Records why the link ends (the first reason counts) and closes the connection.
  void Fail(std::string reason, int error);
  void Ended();
  void OnTimer();
  void ArmTimer();

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override;
  size_t QueuedLinkOutput() const override;
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkHeartbeat(Heartbeat what) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;

  SimContext& ctx_;
  ManagerLinkDelegate& delegate_;
  State state_ = State::kIdle;
  runtime::Stream* stream_ = nullptr;
  const UrlEndpoint* manager_ = nullptr;
  const std::string* agent_id_ = nullptr;
  const proto::AgentSecret* secret_ = nullptr;
  proto::Digest seal_key_{};
  proto::Nonce agent_nonce_{};
  std::string head_;       // the manager's answer until its head is complete
  bool answered_ = false;  // a byte of the answer came (a close before it is "busy")
  ManagerLinkEnd end_;
  proto::ControlLink link_;
  runtime::Timer timer_;  // handshake deadline, then heartbeats
};

}  // namespace camtunnel::agentsim
