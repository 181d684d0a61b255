#include "agentsim/rtp_packetizer.h"

#include <gtest/gtest.h>

#include "agentsim/h264_sample.h"
#include "agentsim/integrity_checker.h"
#include "agentsim/rtp_format.h"

namespace camtunnel::agentsim {
namespace {

TEST(RtpPacketizerTest, FramesReachTheTargetBitrate) {
  const VideoParams params{2000000, 25, 50};
  RtpPacketizer p(params, 0x1234, AgentTag("cam-1"));
  std::vector<uint8_t> frame;
  std::vector<RtpPacketizer::Packet> packets;
  size_t total = 0;
  for (int i = 0; i < 50; ++i) {
    p.NextFrame(&frame, &packets);
    total += frame.size();
  }
  // Two seconds of video at 2 Mbit/s is 500,000 bytes; within 2%.
  EXPECT_NEAR(static_cast<double>(total), 500000.0, 10000.0);
}

TEST(RtpPacketizerTest, EveryPacketVerifiesAndOnlyTheLastOfAFrameHasTheMarker) {
  const uint32_t tag = AgentTag("cam-1");
  RtpPacketizer p({1000000, 25, 10}, 0x1234, tag);
  IntegrityChecker checker(tag);
  std::vector<uint8_t> frame;
  std::vector<RtpPacketizer::Packet> packets;
  for (int f = 0; f < 20; ++f) {
    p.NextFrame(&frame, &packets);
    ASSERT_FALSE(packets.empty());
    for (size_t i = 0; i < packets.size(); ++i) {
      const auto& pk = packets[i];
      ASSERT_EQ(frame[pk.offset], '$');
      const std::span<const uint8_t> rtp(frame.data() + pk.offset + 4, pk.size - 4);
      const auto info = ParseRtpPacket(rtp);
      ASSERT_TRUE(info);
      EXPECT_EQ(info->marker, i + 1 == packets.size());
      EXPECT_EQ(info->timestamp, static_cast<uint32_t>(f * 90000 / 25));
      EXPECT_LE(info->payload.size(), RtpPacketizer::kMaxPayload);
      checker.OnPacket(rtp);
    }
  }
  EXPECT_EQ(checker.Counts().errors(), 0u);
  EXPECT_EQ(checker.Counts().packets, p.next_rtp_seq());
}

TEST(RtpPacketizerTest, GopStartsWithSpsPpsAndIdr) {
  RtpPacketizer p({1000000, 25, 3}, 1, 2);
  std::vector<uint8_t> frame;
  std::vector<RtpPacketizer::Packet> packets;
  auto nal_type = [&](size_t i) { return frame[packets[i].offset + 4 + kRtpHeaderBytes] & 0x1f; };
  p.NextFrame(&frame, &packets);
  EXPECT_EQ(nal_type(0), 7);  // SPS
  EXPECT_EQ(nal_type(1), 8);  // PPS
  EXPECT_EQ(nal_type(2), 5);  // IDR
  p.NextFrame(&frame, &packets);
  EXPECT_EQ(nal_type(0), 1);  // P
  p.NextFrame(&frame, &packets);
  p.NextFrame(&frame, &packets);
  EXPECT_EQ(nal_type(0), 7);  // next GOP
}

TEST(H264SampleTest, FmtpCarriesTheSampleParameterSets) {
  const std::string fmtp = SampleFmtp();
  EXPECT_NE(fmtp.find("packetization-mode=1"), std::string::npos);
  EXPECT_NE(fmtp.find("profile-level-id=42c00a"), std::string::npos);
  EXPECT_NE(fmtp.find("sprop-parameter-sets=Z0LA"), std::string::npos);
}

}  // namespace
}  // namespace camtunnel::agentsim
