// One RTSP session through the frontend, as a media server plays it: OPTIONS, DESCRIBE (checks
// the SDP is H.264), SETUP (TCP interleaved), PLAY, a GET_PARAMETER keep-alive, then interleaved
// RTP verified packet by packet (integrity_checker.h) until its time is up, then TEARDOWN.
// The open latency is from connect to the first answer (OPTIONS), which the gateway can only
// give once the tunnel is up and the camera has spoken.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentsim/integrity_checker.h"
#include "agentsim/media_session.h"
#include "proto/http_head.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class MediaRtspSession final : public MediaSession, public runtime::StreamHandler {
 public:
  static constexpr uint64_t kKeepAliveFirstMs = 1000;
  static constexpr uint64_t kKeepAliveMs = 25000;
  static constexpr uint64_t kTeardownTimeoutMs = 3000;

  // `play_ms` 0: play until Stop().
  MediaRtspSession(SimContext& ctx, MediaObserver& observer, const AgentIdentity& agent,
                   uint64_t play_ms);

  void Start() override;
  void Stop() override;
  IntegrityCounts LiveIntegrity() const override;

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class Step : uint8_t {
    kConnecting,
    kOptions,
    kDescribe,
    kSetup,
    kPlay,
    kPlaying,
    kTeardown,
    kDone
  };

  void Request(std::string_view method, const std::string& url, const std::string& headers);
  // Consumes whole messages from `data`; returns how many bytes were used.
  size_t Consume(std::span<const uint8_t> data);
  void OnResponse(const proto::ResponseHead& head, std::string_view body);
  void OpenResolved(std::string_view result);
  // Records how the session ended and closes its connection.
  void End(std::string_view outcome, int error);
  void OnTimer();
  // Last step: tells the observer and frees the session.
  void Finished();

  SimContext& ctx_;
  MediaObserver& observer_;
  uint64_t play_ms_;
  Step step_ = Step::kConnecting;
  runtime::Stream* stream_ = nullptr;
  uint64_t started_us_ = 0;
  bool open_resolved_ = false;
  bool ended_ = false;
  bool stop_requested_ = false;
  int cseq_ = 0;
  std::string url_;
  std::string content_base_;
  std::string session_;
  std::vector<uint8_t> buf_;  // an incomplete message carried over to the next read
  IntegrityChecker checker_;
  uint64_t play_until_ms_ = 0;
  uint64_t next_keepalive_ms_ = 0;
  runtime::Timer timer_;
};

}  // namespace camtunnel::agentsim
