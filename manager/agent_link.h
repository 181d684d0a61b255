// One agent's manager link (PROTOCOL.md section 10) after its upgrade head was accepted: the
// 101 with the manager proof, the HELLO check, WELCOME and ASSIGN, heartbeats, STATUS up, and
// the commands an operator sends down (SWITCH, DEACTIVATE, RESTART, a fresh ASSIGN).
//
// On a plain link (accepted on a --plain_listen listener) every frame both ways, from HELLO and
// WELCOME on, carries the section 7 MAC under the manager session key (section 10.2), so nobody
// on the path can inject, replay, reorder or reflect a frame; a bad MAC is ERROR 4, a close and
// a count. The gateway keys inside ASSIGN are sealed under the agent secret on either transport.
//
// States: kAwaitHello -> kEstablished -> kClosed. Only a verified HELLO registers the link (and
// only then may it replace an older link of the same agent: a wrong proof never evicts a live
// one). Freed in OnStreamClosed, the stream's last call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manager/state_store.h"
#include "proto/control_frame.h"
#include "proto/manager_link.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class ManagerServer;

class AgentLink final : public runtime::StreamHandler {
 public:
  // Takes over `stream` (its handler becomes the link) and answers 101. The caller counted the
  // connection as unauthenticated; the link releases that when HELLO verifies or it closes.
  static void Start(ManagerServer& server, runtime::Stream* stream,
                    const proto::ManagerUpgrade& upgrade, const AgentRecord& agent,
                    std::span<const uint8_t> leftover);

  const std::string& agent_id() const { return agent_id_; }
  bool established() const { return state_ == State::kEstablished; }
  // Plain TCP (frames MACed, not encrypted) rather than TLS.
  bool plain() const { return opener_.has_value(); }
  std::string remote() const { return stream_->peer_text(); }
  const std::string& version() const { return version_; }
  const std::string& last_status() const { return last_status_; }
  int64_t connected_wall_ms() const { return connected_wall_ms_; }
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
  enum class State { kAwaitHello, kEstablished, kClosed };

  AgentLink(ManagerServer& server, runtime::Stream* stream, const AgentRecord& agent);
  void Send(proto::FrameBuilder& frame);
  // ERROR `code` + graceful close; `count` is the counter to bump.
  void Fail(proto::ErrorCode code, std::string_view text, uint64_t* count);
  bool HandleFrame(proto::Frame& frame);
  void HandleHello(const proto::Frame& frame);
  bool HelloProofValid(const proto::Frame& frame) const;
  void OnHeartbeat();
  void OnKeyRefresh();
  void ArmKeyRefresh();
  void CloseGracefully();
  void OnStatus(std::string_view text);

  ManagerServer& server_;
  runtime::Stream* stream_;
  State state_ = State::kAwaitHello;
  bool counted_unauthenticated_ = true;
  bool registered_ = false;
  std::string agent_id_;
  proto::AgentSecret secret_{};
  proto::Digest seal_key_{};
  proto::Nonce agent_nonce_{};
  proto::Nonce manager_nonce_{};
  proto::FrameDecoder decoder_;
  // Plain links only (section 7 under the manager session key); both empty with TLS.
  std::optional<proto::FrameSealer> sealer_;
  std::optional<proto::FrameOpener> opener_;
  std::string version_;
  std::string last_status_;
  std::vector<proto::AssignedStreamer> assigned_;
  std::string located_url_;
  uint64_t health_moved_ms_ = 0;
  int64_t connected_wall_ms_ = 0;
  uint64_t last_rx_ms_ = 0;
  uint64_t last_tx_ms_ = 0;
  uint64_t next_ping_ = 1;
  runtime::Timer deadline_;  // handshake deadline, then heartbeats
  runtime::Timer refresh_;   // next ASSIGN before the keys expire
};

}  // namespace camtunnel::manager
