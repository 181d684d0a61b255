#include "agentsim/integrity_checker.h"

#include <algorithm>

#include "agentsim/rtp_format.h"

namespace camtunnel::agentsim {

IntegrityCounts& IntegrityCounts::operator+=(const IntegrityCounts& o) {
  packets += o.packets;
  payload_bytes += o.payload_bytes;
  lost += o.lost;
  duplicate += o.duplicate;
  reordered += o.reordered;
  corrupt += o.corrupt;
  return *this;
}

void IntegrityChecker::OnPacket(std::span<const uint8_t> packet) {
  const auto info = ParseRtpPacket(packet);
  // The CRC covers the tag and sequence number too, so a damaged sequence number is "corrupt",
  // never a phantom loss.
  if (!info || info->agent_tag != agent_tag_ ||
      VerifyCrc(info->agent_tag, info->verify_seq, info->payload) != info->crc) {
    ++counts_.corrupt;
    ++corrupt_since_valid_;
    return;
  }
  const uint32_t seq = info->verify_seq;
  if (seq >= next_seq_) {
    // Corrupt packets since the last good one arrived, just unreadable: they account for the
    // first numbers of the gap, which are then not also "lost".
    const uint32_t explained =
        static_cast<uint32_t>(std::min<uint64_t>(seq - next_seq_, corrupt_since_valid_));
    next_seq_ += explained;
    const uint32_t gap = seq - next_seq_;
    if (gap > kMaxTrackedGap) {
      untracked_lost_ += gap;
    } else {
      for (uint32_t s = next_seq_; s < seq; ++s) {
        missing_.insert(s);
      }
    }
    next_seq_ = seq + 1;
  } else if (missing_.erase(seq) == 1) {
    ++counts_.reordered;
  } else {
    ++counts_.duplicate;
    corrupt_since_valid_ = 0;
    return;  // a duplicate's bytes were already verified once
  }
  corrupt_since_valid_ = 0;
  ++counts_.packets;
  counts_.payload_bytes += info->payload.size();
}

IntegrityCounts IntegrityChecker::Counts() const {
  IntegrityCounts c = counts_;
  c.lost = untracked_lost_ + missing_.size();
  return c;
}

}  // namespace camtunnel::agentsim
