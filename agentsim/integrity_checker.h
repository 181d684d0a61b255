// The media side's proof that a stream arrived intact: every RTP packet is checked against its
// own CRC and agent tag, and its verify_seq against the ones seen so far. Every anomaly is
// counted as exactly one kind:
//   corrupt    bad RTP framing, missing extension, wrong agent tag, or CRC mismatch (the
//              packet still fills its place in the sequence, so it is not also "lost")
//   duplicate  a sequence number already delivered
//   reordered  a sequence number that was missing and arrived late (it leaves "lost")
//   lost       a gap that never filled
// Over TCP nothing is lost or reordered by the network, so any non-zero count is a bug in the
// path (gateway relay, buffers, shard moves) or a camera misbehaving on purpose (--camera_fault).
#pragma once

#include <cstdint>
#include <span>

#include "absl/container/flat_hash_set.h"

namespace camtunnel::agentsim {

struct IntegrityCounts {
  uint64_t packets = 0;        // packets that passed every check
  uint64_t payload_bytes = 0;  // their RTP payload bytes
  uint64_t lost = 0;
  uint64_t duplicate = 0;
  uint64_t reordered = 0;
  uint64_t corrupt = 0;

  uint64_t errors() const { return lost + duplicate + reordered + corrupt; }
  IntegrityCounts& operator+=(const IntegrityCounts& o);
};

class IntegrityChecker {
 public:
  // Gaps wider than this are counted as lost without remembering each missing number, so a
  // corrupt-but-valid-looking jump cannot grow memory.
  static constexpr uint32_t kMaxTrackedGap = 65536;

  explicit IntegrityChecker(uint32_t expected_agent_tag) : agent_tag_(expected_agent_tag) {}

  // One RTP packet as framed on interleaved channel 0.
  void OnPacket(std::span<const uint8_t> packet);
  // A framing error outside any packet (counted as corrupt).
  void OnCorruptFraming() { ++counts_.corrupt; }

  // `lost` includes the numbers still missing now.
  IntegrityCounts Counts() const;

 private:
  uint32_t agent_tag_;
  uint32_t next_seq_ = 0;  // the camera starts every session at 0
  uint64_t untracked_lost_ = 0;
  uint64_t corrupt_since_valid_ = 0;
  absl::flat_hash_set<uint32_t> missing_;
  IntegrityCounts counts_;
};

}  // namespace camtunnel::agentsim
