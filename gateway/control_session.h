// One agent's control connection after its upgrade. The link itself (the 101 with the gateway
// proof, HELLO's agent proof, WELCOME, heartbeats, plain-mode MACs, ERROR and UNSUPPORTED) is
// proto::ControlLink's; this session installs the verified agent in the registry, sends OPEN,
// SPARE and GOAWAY, takes STATUS and OPEN_FAILED, and counts and logs how links end. Only a
// verified session is installed, so a wrong proof never evicts a live camera.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto/control_frame.h"
#include "proto/control_link.h"
#include "proto/crypto.h"
#include "proto/upgrade.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;

class ControlSession final : public runtime::StreamHandler, private proto::ControlLink::Handler {
 public:
  static void Start(GatewayShard& gw, runtime::Stream* stream, const proto::UpgradeRequest& req,
                    const proto::Digest& agent_key, uint64_t accepted_ms);

  const std::string& agent_id() const { return agent_id_; }
  bool verified() const { return link_.established(); }
  // The link ended (GOAWAY or ERROR sent, or the agent gone): the stream closes once flushed.
  bool closing() const { return link_.ended(); }
  // The exposed service matching a name, or a port when `name` is empty.
  const proto::ServiceEntry* FindService(std::string_view name, std::optional<uint16_t> port) const;
  const std::vector<proto::ServiceEntry>& services() const { return services_; }
  const std::string& version() const { return version_; }
  const std::string& last_status() const { return last_status_; }
  std::string remote() const;
  uint64_t connected_wall_ms() const { return connected_wall_ms_; }
  uint64_t last_rtt_us() const { return link_.last_rtt_us(); }
  uint32_t capabilities() const { return link_.peer_capabilities(); }  // the agent's, from HELLO

  void SendOpen(proto::TunnelId id, std::string_view service, const proto::Nonce& nonce);
  // Asks for a spare data connection (PROTOCOL.md 8.1).
  void SendSpare(proto::TunnelId id, const proto::Nonce& nonce);
  // Tells the agent to go away (replaced, draining) and closes after flushing.
  void GoAway(std::string_view reason, uint32_t reconnect_after_ms);

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  ControlSession(GatewayShard& gw, runtime::Stream* stream, uint64_t accepted_ms);
  void OnTimer();
  void ArmTimer(int64_t due_us);

  // proto::ControlLink::Handler
  void WriteLinkOutput(std::span<const uint8_t> bytes) override;
  size_t QueuedLinkOutput() const override;
  void OnLinkHello(const proto::Frame& hello) override;
  void OnLinkEstablished(const proto::LinkWelcome& welcome) override;
  void OnLinkFrame(const proto::Frame& frame) override;
  void OnLinkUnsupported(uint8_t type) override;
  void OnLinkEnded(const proto::LinkEnd& end) override;
  void OnOpenFailed(const proto::Frame& frame);

  GatewayShard& gw_;
  runtime::Stream* stream_;
  proto::ControlLink link_;
  std::string agent_id_;
  std::vector<proto::ServiceEntry> services_;
  std::string version_;
  std::string last_status_;
  uint64_t accepted_ms_;  // shard ms of the TCP accept, for the handshake histogram
  uint64_t connected_wall_ms_ = 0;
  runtime::Timer timer_;  // HELLO deadline, then the heartbeats
};

}  // namespace camtunnel::gateway
