#include "agentsim/rtp_packetizer.h"

#include <algorithm>
#include <cstring>

#include "agentsim/h264_sample.h"
#include "agentsim/rtp_format.h"

namespace camtunnel::agentsim {
namespace {

constexpr uint8_t kNalFuA = 28;
constexpr uint8_t kNalFiller = 12;
constexpr size_t kInterleaveHeaderBytes = 4;
constexpr size_t kPacketOverhead = kInterleaveHeaderBytes + kRtpHeaderBytes;

}  // namespace

RtpPacketizer::RtpPacketizer(const VideoParams& params, uint32_t ssrc, uint32_t agent_tag)
    : params_(params), ssrc_(ssrc), agent_tag_(agent_tag) {
  frame_target_bytes_ = static_cast<size_t>(params_.bitrate_bps / 8 / std::max(1u, params_.fps));
}

uint32_t RtpPacketizer::next_timestamp() const {
  return static_cast<uint32_t>(frame_index_ * kH264ClockHz / std::max(1u, params_.fps));
}

void RtpPacketizer::NextFrame(std::vector<uint8_t>* out, std::vector<Packet>* packets) {
  out->clear();
  packets->clear();
  out_ = out;
  packets_ = packets;
  const uint32_t timestamp = next_timestamp();
  const uint64_t in_gop = frame_index_ % std::max(1u, params_.gop);
  size_t media_bytes = 0;
  if (in_gop == 0) {
    AddNal(SampleSps(), false, timestamp);
    AddNal(SamplePps(), false, timestamp);
    AddNal(SampleIdr(), false, timestamp);
  } else {
    // P frame k follows the IDR at k = 0, so frame_num restarts in step with every GOP.
    AddNal(SampleP(static_cast<size_t>(in_gop - 1)), false, timestamp);
  }
  media_bytes = out->size();
  // What is left of this frame's byte budget becomes one filler NAL unit; at least its header
  // and trailing byte, so every frame ends with a filler packet carrying the marker bit.
  const size_t packets_estimate = frame_target_bytes_ / kMaxPayload + 1;
  const size_t used = media_bytes + packets_estimate * kPacketOverhead;
  AddFiller(frame_target_bytes_ > used + 2 ? frame_target_bytes_ - used : 2, timestamp);
  ++frame_index_;
  out_ = nullptr;
  packets_ = nullptr;
}

void RtpPacketizer::AddFiller(size_t bytes, uint32_t timestamp) {
  if (filler_.size() != bytes) {
    filler_.assign(bytes, 0xff);  // ff bytes, then rbsp trailing bits (H.264 7.3.2.7)
    filler_.front() = kNalFiller;
    filler_.back() = 0x80;
  }
  AddNal(filler_, true, timestamp);
}

void RtpPacketizer::AddNal(std::span<const uint8_t> nal, bool last_of_frame, uint32_t timestamp) {
  if (nal.size() <= kMaxPayload) {
    AddPacket({}, nal, last_of_frame, timestamp);
    return;
  }
  const uint8_t header = nal[0];
  std::span<const uint8_t> rest = nal.subspan(1);
  bool first = true;
  while (!rest.empty()) {
    const size_t n = std::min(rest.size(), kMaxPayload - 2);
    const bool end = n == rest.size();
    const uint8_t fu[2] = {
        static_cast<uint8_t>((header & 0xe0) | kNalFuA),
        static_cast<uint8_t>((first ? 0x80 : 0) | (end ? 0x40 : 0) | (header & 0x1f)),
    };
    AddPacket(fu, rest.first(n), end && last_of_frame, timestamp);
    rest = rest.subspan(n);
    first = false;
  }
}

void RtpPacketizer::AddPacket(std::span<const uint8_t> head, std::span<const uint8_t> body,
                              bool marker, uint32_t timestamp) {
  const size_t payload_bytes = head.size() + body.size();
  const size_t rtp_bytes = kRtpHeaderBytes + payload_bytes;
  const size_t offset = out_->size();
  out_->resize(offset + kInterleaveHeaderBytes + rtp_bytes);
  uint8_t* p = out_->data() + offset;
  p[0] = '$';
  p[1] = 0;  // channel 0: RTP of track 0
  p[2] = static_cast<uint8_t>(rtp_bytes >> 8);
  p[3] = static_cast<uint8_t>(rtp_bytes);
  uint8_t* payload = p + kInterleaveHeaderBytes + kRtpHeaderBytes;
  if (!head.empty()) {
    std::memcpy(payload, head.data(), head.size());
  }
  std::memcpy(payload + head.size(), body.data(), body.size());
  RtpPacketInfo info;
  info.marker = marker;
  info.rtp_seq = rtp_seq_++;
  info.timestamp = timestamp;
  info.ssrc = ssrc_;
  info.agent_tag = agent_tag_;
  info.verify_seq = verify_seq_++;
  info.crc = VerifyCrc(agent_tag_, info.verify_seq, {payload, payload_bytes});
  WriteRtpHeader(info, p + kInterleaveHeaderBytes);
  packets_->push_back({offset, kInterleaveHeaderBytes + rtp_bytes});
}

}  // namespace camtunnel::agentsim
