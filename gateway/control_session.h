// One agent's control connection after its upgrade: sends the 101 with the gateway proof,
// verifies HELLO's agent proof, then runs the session: WELCOME, heartbeats, STATUS, OPEN and
// OPEN_FAILED. Only a verified session is installed in the registry, so a wrong proof never
// evicts a live camera. Plain mode seals and checks every frame (PROTOCOL.md section 7).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/upgrade.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;

class ControlSession final : public runtime::StreamHandler {
 public:
  static void Start(GatewayShard& gw, runtime::Stream* stream, const proto::UpgradeRequest& req,
                    const proto::Digest& agent_key, uint64_t accepted_ms);

  const std::string& agent_id() const { return agent_id_; }
  bool verified() const { return state_ == State::kActive; }
  // GOAWAY or ERROR sent: the session ends once its frames are flushed.
  bool closing() const { return state_ == State::kClosing; }
  // The exposed service matching a name, or a port when `name` is empty.
  const proto::ServiceEntry* FindService(std::string_view name, std::optional<uint16_t> port) const;
  const std::vector<proto::ServiceEntry>& services() const { return services_; }
  const std::string& version() const { return version_; }
  const std::string& last_status() const { return last_status_; }
  std::string remote() const;
  uint64_t connected_wall_ms() const { return connected_wall_ms_; }
  uint64_t last_rtt_us() const { return last_rtt_us_; }
  uint32_t capabilities() const { return capabilities_; }  // the agent's, from HELLO

  void SendOpen(proto::TunnelId id, std::string_view service, const proto::Nonce& nonce);
  // Asks for a spare data connection (PROTOCOL.md 8.1).
  void SendSpare(proto::TunnelId id, const proto::Nonce& nonce);
  // Tells the agent to go away (replaced, draining) and closes after flushing.
  void GoAway(std::string_view reason, uint32_t reconnect_after_ms);

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class State : uint8_t { kAwaitHello, kActive, kClosing };

  ControlSession(GatewayShard& gw, runtime::Stream* stream);
  void OnFrame(proto::Frame& frame);
  void OnHello(const proto::Frame& frame);
  void Send(proto::FrameBuilder& frame);
  void SendError(proto::ErrorCode code, std::string_view text);
  void OnHeartbeatTick();

  // What only the HELLO check needs, freed once HELLO verifies: tens of thousands of idle
  // agents per gateway make every byte of a session count.
  struct PendingHello {
    proto::KeyRef key_ref;
    proto::Digest agent_key{};
    proto::Nonce agent_nonce{};
    proto::Nonce gateway_nonce{};
    std::array<uint8_t, proto::kExporterBytes> exporter{};  // TLS only
    uint64_t accepted_ms = 0;
  };
  struct PlainMacs {
    proto::FrameSealer sealer;
    proto::FrameOpener opener;
  };
  proto::HandshakeProofInput ProofInput() const;

  GatewayShard& gw_;
  runtime::Stream* stream_;
  State state_ = State::kAwaitHello;
  uint32_t capabilities_ = 0;  // fills the padding after state_
  std::string agent_id_;
  std::unique_ptr<PendingHello> hello_;
  std::unique_ptr<PlainMacs> plain_;  // plain mode only (PROTOCOL.md section 7)
  proto::FrameDecoder decoder_;
  std::vector<proto::ServiceEntry> services_;
  std::string version_;
  std::string last_status_;
  uint64_t connected_wall_ms_ = 0;
  uint64_t last_rx_ms_ = 0;
  uint64_t last_tx_ms_ = 0;
  uint64_t ping_sequence_ = 0;
  uint64_t ping_sent_ns_ = 0;
  uint64_t last_rtt_us_ = 0;
  runtime::Timer timer_;  // HELLO deadline, then the heartbeat tick
};

}  // namespace camtunnel::gateway
