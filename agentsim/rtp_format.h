// The simulated cameras' RTP packets (RFC 3550, H.264 payload per RFC 6184) carry one header
// extension that makes every packet self-verifying: the sending agent's tag, a per-session
// packet sequence number (32 bits, so it never wraps in a run) and a CRC-32 over both and the
// payload. The extension sits in the RTP header, not the payload, so the payload stays plain
// H.264 that any decoder plays (RTP receivers skip extensions they do not know), and the check is
// per packet rather than per frame.
//
// Wire layout (28 bytes before the payload):
//   V=2 P=0 X=1 CC=0 | M PT=96 | seq:16 | timestamp:32 | ssrc:32
//   profile 0x4354 ("CT") | length 3 (words) | agent_tag:32 | verify_seq:32 | crc:32
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace camtunnel::agentsim {

inline constexpr uint16_t kVerifyExtensionProfile = 0x4354;
inline constexpr size_t kRtpHeaderBytes = 28;  // fixed header + our extension
inline constexpr uint8_t kH264PayloadType = 96;
inline constexpr uint32_t kH264ClockHz = 90000;

struct RtpPacketInfo {
  bool marker = false;
  uint16_t rtp_seq = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  uint32_t agent_tag = 0;
  uint32_t verify_seq = 0;
  uint32_t crc = 0;
  std::span<const uint8_t> payload;
};

// CRC-32 of the agent id: the receiver knows which agent it asked for, so a packet from any
// other camera (a crossed tunnel) fails the check.
uint32_t AgentTag(std::string_view agent_id);
uint32_t VerifyCrc(uint32_t agent_tag, uint32_t verify_seq, std::span<const uint8_t> payload);

// Writes the 28 header bytes for `info` (payload and crc taken from it as given).
void WriteRtpHeader(const RtpPacketInfo& info, uint8_t* out);
// nullopt unless the packet is RTP version 2 with exactly our extension.
std::optional<RtpPacketInfo> ParseRtpPacket(std::span<const uint8_t> packet);

}  // namespace camtunnel::agentsim
