// One data connection (PROTOCOL.md section 8), opened on OPEN: connect to the gateway (same
// transport and source address as the agent's control connection), send the data upgrade with
// the data proof bound to this connection's TLS exporter, wait for 101, then hand the stream to
// a simulated camera. Opened on SPARE (an empty service, section 8.1), it waits after the 101
// for the gateway's OPEN on the connection itself, answers OPENED, and then does the same.
// Frees itself when the stream closes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "agentsim/agent_identity.h"
#include "agentsim/camera_session.h"
#include "agentsim/sim_context.h"
#include "proto/control_frame.h"
#include "proto/identifiers.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class DataTunnel final : public runtime::StreamHandler {
 public:
  // The gateway's default open deadline: a later 101 would find no media server waiting.
  static constexpr uint64_t kUpgradeTimeoutMs = 5000;

  // An empty `service`: a spare, whose service comes with the gateway's OPEN on it.
  static void Start(SimContext& ctx, const AgentIdentity& agent, proto::TunnelId tunnel,
                    std::string_view service, const proto::Nonce& open_nonce);

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamWritable(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  DataTunnel(SimContext& ctx, const AgentIdentity& agent, proto::TunnelId tunnel,
             std::string_view service, const proto::Nonce& open_nonce);
  void OnDialed(runtime::Stream* stream, int error);
  void OnUpgradeBytes(std::span<const uint8_t> bytes);
  // A spare after its 101: the gateway's OPEN frame, then the service's bytes.
  void OnSpareBytes(runtime::Stream& stream, std::span<const uint8_t> bytes);
  void StartCamera(runtime::Stream& stream, std::span<const uint8_t> first_bytes);
  void Count(const std::string& result);

  SimContext& ctx_;
  const AgentIdentity& agent_;  // agents live for the whole run
  proto::TunnelId tunnel_;
  std::string service_;
  proto::Nonce open_nonce_;
  runtime::Stream* stream_ = nullptr;
  std::string head_;
  bool spare_waiting_ = false;  // a spare, proven, its OPEN not here yet
  proto::FrameDecoder open_decoder_;
  bool counted_ = false;
  std::unique_ptr<CameraSession> camera_;
  runtime::Timer deadline_;
};

}  // namespace camtunnel::agentsim
