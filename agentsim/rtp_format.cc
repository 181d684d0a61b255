#include "agentsim/rtp_format.h"

#include <zlib.h>

namespace camtunnel::agentsim {
namespace {

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

uint32_t Crc(uint32_t crc, const uint8_t* data, size_t len) {
  // zlib's crc32 is the table-braided one: several GB/s, so checking every byte costs little.
  return static_cast<uint32_t>(crc32(crc, data, static_cast<uInt>(len)));
}

}  // namespace

uint32_t AgentTag(std::string_view agent_id) {
  return Crc(0, reinterpret_cast<const uint8_t*>(agent_id.data()), agent_id.size());
}

uint32_t VerifyCrc(uint32_t agent_tag, uint32_t verify_seq, std::span<const uint8_t> payload) {
  uint8_t prefix[8];
  Put32(prefix, agent_tag);
  Put32(prefix + 4, verify_seq);
  return Crc(Crc(0, prefix, sizeof(prefix)), payload.data(), payload.size());
}

void WriteRtpHeader(const RtpPacketInfo& info, uint8_t* out) {
  out[0] = 0x90;  // V=2, X=1
  out[1] = static_cast<uint8_t>((info.marker ? 0x80 : 0) | kH264PayloadType);
  Put16(out + 2, info.rtp_seq);
  Put32(out + 4, info.timestamp);
  Put32(out + 8, info.ssrc);
  Put16(out + 12, kVerifyExtensionProfile);
  Put16(out + 14, 3);
  Put32(out + 16, info.agent_tag);
  Put32(out + 20, info.verify_seq);
  Put32(out + 24, info.crc);
}

std::optional<RtpPacketInfo> ParseRtpPacket(std::span<const uint8_t> packet) {
  if (packet.size() < kRtpHeaderBytes) {
    return std::nullopt;
  }
  const uint8_t* p = packet.data();
  if (p[0] != 0x90 || Get16(p + 12) != kVerifyExtensionProfile || Get16(p + 14) != 3) {
    return std::nullopt;
  }
  RtpPacketInfo info;
  info.marker = (p[1] & 0x80) != 0;
  info.rtp_seq = Get16(p + 2);
  info.timestamp = Get32(p + 4);
  info.ssrc = Get32(p + 8);
  info.agent_tag = Get32(p + 16);
  info.verify_seq = Get32(p + 20);
  info.crc = Get32(p + 24);
  info.payload = packet.subspan(kRtpHeaderBytes);
  return info;
}

}  // namespace camtunnel::agentsim
