// One agent's manager link (PROTOCOL.md section 10) after its upgrade head was accepted. The
// link itself (the 101 with the manager proof, the HELLO check, WELCOME, heartbeats, ERROR and
// UNSUPPORTED, and on a plain link the section 7 MACs under the manager session key) is
// proto::ControlLink's; this class registers the verified agent, sends ASSIGN (the gateway keys
// sealed under the agent secret on either transport) and the operator's commands (SWITCH,
// DEACTIVATE, RESTART), takes STATUS, and counts how links end.
//
// Only a verified HELLO registers the link (and only then may it replace an older link of the
// same agent: a wrong proof never evicts a live one). Freed in OnStreamClosed, the stream's last
// call.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "manager/store_records.h"
#include "proto/control_frame.h"
#include "proto/control_link.h"
#include "proto/manager_link.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class ManagerServer;

class AgentLink final : public runtime::StreamHandler, private proto::ControlLink::Handler {
 public:
  // Takes over `stream` (its handler becomes the link) and answers 101. The caller counted the
  // connection as unauthenticated; the link releases that when HELLO verifies or it closes.
  static void Start(ManagerServer& server, runtime::Stream* stream,
                    const proto::ManagerUpgrade& upgrade, const AgentRecord& agent,
                    std::span<const uint8_t> leftover);

  const std::string& agent_id() const { return agent_id_; }
  bool established() const { return link_.established(); }
  // Plain TCP (frames MACed, not encrypted) rather than TLS.
  bool plain() const { return link_.plain(); }
  std::string remote() const { return stream_->peer_text(); }
  const std::string& version() const { return version_; }
  const std::string& last_status() const { return last_status_; }
  int64_t connected_wall_ms() const { return connected_wall_ms_; }
  // The last frame from the agent (wall ms): exact, where the store's copy is batched.
  int64_t last_seen_wall_ms() const { return last_seen_wall_ms_; }
  // The Streamer of its current assignment (first entry of its last ASSIGN, this link's or an
  // earlier one's): what the manager's load counts it against.
  const std::string& assigned_url() const { return assigned_url_; }
  const std::vector<proto::AssignedStreamer>& assigned() const { return assigned_; }
  // The Streamer the agent last reported itself connected to (STATUS "streamer=URL
  // state=connected"), kept across links in SQLite; empty if it never said.
  const std::string& located_url() const { return located_url_; }
  // Whether the agent is (as far as the manager knows) on the Streamer at `url`: where it last
  // said it was connected, or, before any such STATUS, the first entry of its last ASSIGN.
  bool HeldBy(std::string_view url) const;
  // When the manager last moved it off an unhealthy Streamer (shard ms; 0 never).
  uint64_t health_moved_ms() const { return health_moved_ms_; }
  void set_health_moved_ms(uint64_t ms) { health_moved_ms_ = ms; }

  // The epoch of this link's claim in the link registry; 0 until the store confirmed it.
  int64_t epoch() const { return epoch_; }
  // Unique per link of this process (a pointer may be reused after a link is freed).
  uint64_t serial() const { return serial_; }
  // An operator's command taken for this link (CommandDesk): sent with its id to an agent that
  // acknowledges commands, without one (and counted as done once written) to one that does not.
  void Deliver(const CommandRecord& command);
  bool AwaitingAck(int64_t command_id) const {
    return awaiting_ack_.count(static_cast<uint64_t>(command_id)) != 0;
  }

  // Sends a fresh ASSIGN (`preferred` first when healthy) and records its first entry.
  void SendAssign(std::string_view preferred = {});
  void SendSwitch(std::string_view url, std::string_view reason = "moved by the operator");
  // DEACTIVATE / RESTART, then the link ends once they are flushed.
  void SendDeactivate(std::string_view reason);
  void SendRestart(std::string_view reason);
  // A newer authenticated link of the same agent took over.
  void Replace();

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  AgentLink(ManagerServer& server, runtime::Stream* stream, const AgentRecord& agent);
  void OnTimer();
  void ArmTimer(int64_t due_us);
  void OnKeyRefresh();
  void ArmKeyRefresh();
  void CloseGracefully();
  void OnStatus(std::string_view text);
  void OnAck(const proto::Frame& frame);
  void ClaimInRegistry();
  // The agent was heard from: the batched last-seen write, at most every seen_resolution_ms
  // unless `status` changed.
  void MarkSeen(std::string_view status = {});

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override;
  size_t QueuedLinkOutput() const override;
  void OnLinkHello(const proto::Frame& hello) override;
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkHeartbeat(Heartbeat what) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;

  ManagerServer& server_;
  runtime::Stream* stream_;
  proto::ControlLink link_;
  bool counted_unauthenticated_ = true;
  bool registered_ = false;
  bool closed_ = false;  // the stream was told to close
  std::string agent_id_;
  proto::Digest seal_key_{};
  std::string version_;
  std::string last_status_;
  std::vector<proto::AssignedStreamer> assigned_;
  std::string located_url_;
  std::string assigned_url_;
  bool ever_linked_ = false;  // the store had seen it on a link before this one
  uint64_t health_moved_ms_ = 0;
  uint64_t serial_ = 0;
  int64_t epoch_ = 0;
  std::set<uint64_t> awaiting_ack_;  // command ids sent on this link, not yet acknowledged
  int64_t connected_wall_ms_ = 0;
  int64_t last_seen_wall_ms_ = 0;
  int64_t seen_written_ms_ = 0;  // when MarkSeen last handed a time to the batcher
  runtime::Timer deadline_;      // HELLO deadline, then heartbeats
  runtime::Timer refresh_;       // next ASSIGN before the keys expire
};

}  // namespace camtunnel::manager
