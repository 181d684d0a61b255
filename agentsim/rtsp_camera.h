// A simulated RTSP camera on one tunnel: OPTIONS, DESCRIBE (an H.264 SDP with the sample's real
// SPS/PPS), SETUP (TCP interleaved only: 461 for UDP, so nothing can bypass the tunnel), PLAY,
// GET_PARAMETER, TEARDOWN; then interleaved RTP on channel 0, paced at the configured frame rate
// and bitrate, every packet self-verifying (rtp_format.h). With --camera_fault it drops,
// duplicates or reorders one packet in N on purpose.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agentsim/camera_session.h"
#include "agentsim/rtp_packetizer.h"
#include "proto/http_head.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class RtspCamera final : public CameraSession {
 public:
  RtspCamera(SimContext& ctx, runtime::Stream& stream, const AgentIdentity& agent);

  void OnBytes(std::span<const uint8_t> bytes) override;
  void OnEof() override;

 private:
  void OnRequest(const proto::RequestHead& head);
  void Reply(int status, std::string_view reason, std::string_view cseq, const std::string& headers,
             std::string_view body = {});
  void StartPlaying();
  void OnFrameTimer();
  void SendFrame();
  // Writes the frame's packets, applying the configured fault to one packet in N.
  void WriteWithFaults();

  SimContext& ctx_;
  runtime::Stream& stream_;
  std::string in_;
  std::string session_id_;
  std::string track_url_;
  bool setup_ = false;
  bool playing_ = false;
  RtpPacketizer packetizer_;
  std::vector<uint8_t> frame_;
  std::vector<RtpPacketizer::Packet> packets_;
  std::vector<uint8_t> out_;   // the frame with faults applied
  std::vector<uint8_t> held_;  // reorder: the packet sent after the next one
  uint64_t packets_seen_ = 0;
  uint64_t frame_interval_us_ = 40000;
  uint64_t next_frame_us_ = 0;  // due time of the next frame, shard clock
  runtime::Timer frame_timer_;
};

}  // namespace camtunnel::agentsim
