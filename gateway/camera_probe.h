// An on-demand camera health probe (admin API): opens a tunnel like a media server would, sends
// RTSP OPTIONS (rtsp services) or HTTP HEAD (others), and reports the camera's status code and
// the latencies. The report is JSON for the admin caller.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "gateway/tunnel_waiter.h"
#include "proto/identifiers.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;

class CameraProbe final : public runtime::StreamHandler, public TunnelWaiter {
 public:
  // `done(http status for the admin answer, JSON body)` is called exactly once, possibly before
  // Start returns, unless Cancel() comes first.
  using Done = std::function<void(int, std::string)>;
  static CameraProbe* Start(GatewayShard& gw, std::string agent_id, std::string service,
                            std::string path, Done done);
  // The requester went away: `done` is never called; the probe cleans up and frees itself.
  void Cancel();

  void OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes,
                        size_t sent_ahead) override;
  void OnOpenFailed(int error, std::string_view text) override;
  void OnAgentGone() override;

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class State : uint8_t { kOpening, kAsking, kDone };
  static constexpr uint64_t kAnswerTimeoutMs = 5000;

  CameraProbe(GatewayShard& gw, std::string agent_id, std::string service, std::string path,
              Done done);
  void Finish(int admin_status, std::string_view result, int camera_status,
              std::string_view reason);
  void MaybeFree();

  GatewayShard& gw_;
  std::string agent_id_;
  std::string service_;
  std::string path_;
  Done done_;
  State state_ = State::kOpening;
  runtime::Stream* stream_ = nullptr;
  proto::TunnelId tunnel_id_ = 0;
  std::string camera_authority_;
  std::string response_;
  uint64_t started_ns_ = 0;
  uint64_t opened_ns_ = 0;
  runtime::Timer timer_;
};

}  // namespace camtunnel::gateway
