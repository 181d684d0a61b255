#include "agentsim/integrity_checker.h"

#include <gtest/gtest.h>

#include <vector>

#include "agentsim/rtp_format.h"

namespace camtunnel::agentsim {
namespace {

std::vector<uint8_t> Packet(uint32_t tag, uint32_t seq) {
  std::vector<uint8_t> p(kRtpHeaderBytes + 10, 0xab);
  RtpPacketInfo info;
  info.agent_tag = tag;
  info.verify_seq = seq;
  info.crc = VerifyCrc(tag, seq, std::span<const uint8_t>(p).subspan(kRtpHeaderBytes));
  WriteRtpHeader(info, p.data());
  return p;
}

class IntegrityCheckerTest : public ::testing::Test {
 protected:
  const uint32_t tag_ = AgentTag("cam-1");
  IntegrityChecker checker_{tag_};
  void Feed(uint32_t seq) { checker_.OnPacket(Packet(tag_, seq)); }
};

TEST_F(IntegrityCheckerTest, InOrderStreamHasNoErrors) {
  for (uint32_t s = 0; s < 100; ++s) {
    Feed(s);
  }
  const IntegrityCounts c = checker_.Counts();
  EXPECT_EQ(c.packets, 100u);
  EXPECT_EQ(c.payload_bytes, 1000u);
  EXPECT_EQ(c.errors(), 0u);
}

TEST_F(IntegrityCheckerTest, GapThatNeverFillsIsLost) {
  Feed(0);
  Feed(3);
  EXPECT_EQ(checker_.Counts().lost, 2u);
}

TEST_F(IntegrityCheckerTest, LateArrivalIsReorderedNotLost) {
  Feed(0);
  Feed(2);
  Feed(1);
  const IntegrityCounts c = checker_.Counts();
  EXPECT_EQ(c.reordered, 1u);
  EXPECT_EQ(c.lost, 0u);
}

TEST_F(IntegrityCheckerTest, RepeatedNumberIsDuplicate) {
  Feed(0);
  Feed(1);
  Feed(1);
  EXPECT_EQ(checker_.Counts().duplicate, 1u);
  EXPECT_EQ(checker_.Counts().packets, 2u);
}

TEST_F(IntegrityCheckerTest, FlippedPayloadByteIsCorrupt) {
  auto p = Packet(tag_, 0);
  p.back() ^= 1;
  checker_.OnPacket(p);
  EXPECT_EQ(checker_.Counts().corrupt, 1u);
  EXPECT_EQ(checker_.Counts().packets, 0u);
}

TEST_F(IntegrityCheckerTest, FlippedSequenceNumberIsCorruptNotLoss) {
  auto p = Packet(tag_, 0);
  p[23] ^= 0x10;  // low byte of verify_seq
  checker_.OnPacket(p);
  Feed(1);
  const IntegrityCounts c = checker_.Counts();
  EXPECT_EQ(c.corrupt, 1u);
  EXPECT_EQ(c.lost, 0u);
}

TEST_F(IntegrityCheckerTest, GapBeyondTheCorruptPacketsIsStillLost) {
  Feed(0);
  auto p = Packet(tag_, 1);
  p.back() ^= 1;
  checker_.OnPacket(p);
  Feed(4);  // 1 was corrupt, 2 and 3 never came
  const IntegrityCounts c = checker_.Counts();
  EXPECT_EQ(c.corrupt, 1u);
  EXPECT_EQ(c.lost, 2u);
}

TEST_F(IntegrityCheckerTest, PacketOfAnotherAgentIsCorrupt) {
  checker_.OnPacket(Packet(AgentTag("cam-2"), 0));
  EXPECT_EQ(checker_.Counts().corrupt, 1u);
}

TEST_F(IntegrityCheckerTest, HugeGapIsCountedWithoutTrackingEveryNumber) {
  Feed(0);
  Feed(IntegrityChecker::kMaxTrackedGap + 10);
  EXPECT_EQ(checker_.Counts().lost, IntegrityChecker::kMaxTrackedGap + 9);
}

}  // namespace
}  // namespace camtunnel::agentsim
