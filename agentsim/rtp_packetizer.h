// Turns the embedded H.264 sample into a paced RTP stream of a chosen bitrate: each access unit
// is the sample's slice (an IDR with SPS and PPS every GOP, else the next P frame) followed by a
// filler-data NAL unit (type 12, which decoders skip) sized so the stream reaches the target
// bitrate. NAL units larger than one packet go out as FU-A fragments (RFC 6184 section 5.8).
// Every packet is framed for RTSP interleaved transport (`$`, channel 0, length) and carries the
// verification extension of rtp_format.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace camtunnel::agentsim {

struct VideoParams {
  uint64_t bitrate_bps = 1000000;
  uint32_t fps = 25;
  uint32_t gop = 50;  // frames from one IDR to the next
};

class RtpPacketizer {
 public:
  // RTP payload per packet: an Ethernet-sized packet, as cameras send, even though interleaved
  // TCP would allow 64 KiB; per-packet costs are what a relay of camera traffic must carry.
  static constexpr size_t kMaxPayload = 1400;

  // A packet inside the frame buffer: `size` bytes at `offset`, its 4-byte interleave header
  // included.
  struct Packet {
    size_t offset = 0;
    size_t size = 0;
  };

  RtpPacketizer(const VideoParams& params, uint32_t ssrc, uint32_t agent_tag);

  // Replaces `*out` with the next access unit's interleaved packets and `*packets` with where
  // each one is.
  void NextFrame(std::vector<uint8_t>* out, std::vector<Packet>* packets);

  uint64_t frames() const { return frame_index_; }
  uint32_t ssrc() const { return ssrc_; }
  uint16_t next_rtp_seq() const { return rtp_seq_; }
  uint32_t next_timestamp() const;

 private:
  void AddNal(std::span<const uint8_t> nal, bool last_of_frame, uint32_t timestamp);
  void AddFiller(size_t bytes, uint32_t timestamp);
  void AddPacket(std::span<const uint8_t> head, std::span<const uint8_t> body, bool marker,
                 uint32_t timestamp);

  VideoParams params_;
  uint32_t ssrc_;
  uint32_t agent_tag_;
  uint16_t rtp_seq_ = 0;
  uint32_t verify_seq_ = 0;
  uint64_t frame_index_ = 0;
  size_t frame_target_bytes_ = 0;
  std::vector<uint8_t>* out_ = nullptr;
  std::vector<Packet>* packets_ = nullptr;
  std::vector<uint8_t> filler_;  // one filler NAL unit, reused
};

}  // namespace camtunnel::agentsim
