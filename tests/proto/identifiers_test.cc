// Canonical identifiers (PROTOCOL.md section 1): each accepted form, and the near misses that
// must be rejected rather than "fixed".
#include "proto/identifiers.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::proto {
namespace {

TEST(AgentIdTest, AcceptsDnsLabel) {
  EXPECT_TRUE(IsCanonicalAgentId("cam-42"));
  EXPECT_TRUE(IsCanonicalAgentId("a"));
  EXPECT_TRUE(IsCanonicalAgentId("0"));
  EXPECT_TRUE(IsCanonicalAgentId("a-b-c-9"));
}

TEST(AgentIdTest, AcceptsSixtyThreeCharacters) {
  EXPECT_TRUE(IsCanonicalAgentId(std::string(63, 'a')));
}

TEST(AgentIdTest, RejectsSixtyFourCharacters) {
  EXPECT_FALSE(IsCanonicalAgentId(std::string(64, 'a')));
}

TEST(AgentIdTest, RejectsEmptyAgentId) { EXPECT_FALSE(IsCanonicalAgentId("")); }

TEST(AgentIdTest, RejectsUppercaseAgentId) {
  EXPECT_FALSE(IsCanonicalAgentId("Cam-1"));
  EXPECT_FALSE(IsCanonicalAgentId("CAM"));
}

TEST(AgentIdTest, RejectsLeadingOrTrailingHyphen) {
  EXPECT_FALSE(IsCanonicalAgentId("-cam"));
  EXPECT_FALSE(IsCanonicalAgentId("cam-"));
  EXPECT_FALSE(IsCanonicalAgentId("-"));
}

TEST(AgentIdTest, RejectsDotsUnderscoresAndPercentEscapes) {
  EXPECT_FALSE(IsCanonicalAgentId("cam.1"));
  EXPECT_FALSE(IsCanonicalAgentId("cam_1"));
  EXPECT_FALSE(IsCanonicalAgentId("cam%2d1"));
  EXPECT_FALSE(IsCanonicalAgentId("cam 1"));
  EXPECT_FALSE(IsCanonicalAgentId(std::string_view("cam\0", 4)));
}

TEST(KeyIdTest, AcceptsLettersDigitsUnderscoreHyphen) {
  EXPECT_TRUE(IsValidKeyId("k1"));
  EXPECT_TRUE(IsValidKeyId("Key_2024-01"));
  EXPECT_TRUE(IsValidKeyId(std::string(32, 'K')));
}

TEST(KeyIdTest, RejectsEmptyLongAndOtherCharacters) {
  EXPECT_FALSE(IsValidKeyId(""));
  EXPECT_FALSE(IsValidKeyId(std::string(33, 'k')));
  EXPECT_FALSE(IsValidKeyId("k.1"));
  EXPECT_FALSE(IsValidKeyId("k 1"));
  EXPECT_FALSE(IsValidKeyId("k/1"));
}

TEST(ServiceNameTest, AcceptsLowercaseNames) {
  EXPECT_TRUE(IsValidServiceName("rtsp"));
  EXPECT_TRUE(IsValidServiceName("http-alt"));
  EXPECT_TRUE(IsValidServiceName("8080"));
  EXPECT_TRUE(IsValidServiceName(std::string(32, 's')));
}

TEST(ServiceNameTest, RejectsEmptyLongUppercaseAndPunctuation) {
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName(std::string(33, 's')));
  EXPECT_FALSE(IsValidServiceName("RTSP"));
  EXPECT_FALSE(IsValidServiceName("rtsp_1"));
  EXPECT_FALSE(IsValidServiceName("rtsp:554"));
}

TEST(KeyRefTest, ParsesKeyIdAndExpiry) {
  auto ref = ParseKeyRef("k1.1767225600");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->key_id, "k1");
  EXPECT_EQ(ref->expiry, 1767225600u);
}

TEST(KeyRefTest, AcceptsZeroExpiry) {
  auto ref = ParseKeyRef("k1.0");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->expiry, 0u);
}

TEST(KeyRefTest, AcceptsMaximumExpiry) {
  auto ref = ParseKeyRef("k1.18446744073709551615");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->expiry, UINT64_MAX);
}

TEST(KeyRefTest, RejectsExpiryAboveTwoToTheSixtyFour) {
  EXPECT_FALSE(ParseKeyRef("k1.18446744073709551616"));
  EXPECT_FALSE(ParseKeyRef("k1.99999999999999999999"));
  EXPECT_FALSE(ParseKeyRef("k1.100000000000000000000"));
}

TEST(KeyRefTest, RejectsLeadingZeroInExpiry) {
  EXPECT_FALSE(ParseKeyRef("k1.01"));
  EXPECT_FALSE(ParseKeyRef("k1.00"));
}

TEST(KeyRefTest, RejectsSignsSpacesAndEmptyParts) {
  EXPECT_FALSE(ParseKeyRef("k1.+5"));
  EXPECT_FALSE(ParseKeyRef("k1.-5"));
  EXPECT_FALSE(ParseKeyRef("k1. 5"));
  EXPECT_FALSE(ParseKeyRef("k1."));
  EXPECT_FALSE(ParseKeyRef(".5"));
  EXPECT_FALSE(ParseKeyRef("k1"));
  EXPECT_FALSE(ParseKeyRef(""));
}

TEST(KeyRefTest, RejectsSecondDot) {
  EXPECT_FALSE(ParseKeyRef("k1.5.6"));
  EXPECT_FALSE(ParseKeyRef("k1.5."));
}

TEST(KeyRefTest, RejectsInvalidKeyId) {
  EXPECT_FALSE(ParseKeyRef("k 1.5"));
  EXPECT_FALSE(ParseKeyRef(std::string(33, 'k') + ".5"));
}

TEST(KeyRefTest, FormatRoundTrips) {
  KeyRef ref{"k_2", 1767225600};
  EXPECT_EQ(FormatKeyRef(ref), "k_2.1767225600");
  EXPECT_EQ(ParseKeyRef(FormatKeyRef(ref)), ref);
  EXPECT_EQ(FormatKeyRef(KeyRef{"k", 0}), "k.0");
}

TEST(TunnelIdTest, FormatsSixteenLowercaseHexDigits) {
  EXPECT_EQ(FormatTunnelId(0x00a3f09c11d2e4b7), "00a3f09c11d2e4b7");
  EXPECT_EQ(FormatTunnelId(0), "0000000000000000");
  EXPECT_EQ(FormatTunnelId(UINT64_MAX), "ffffffffffffffff");
}

TEST(TunnelIdTest, ParsesCanonicalText) {
  EXPECT_EQ(ParseTunnelId("00a3f09c11d2e4b7"), 0x00a3f09c11d2e4b7u);
  EXPECT_EQ(ParseTunnelId("ffffffffffffffff"), UINT64_MAX);
}

TEST(TunnelIdTest, RejectsUppercaseHex) { EXPECT_FALSE(ParseTunnelId("00A3F09C11D2E4B7")); }

TEST(TunnelIdTest, RejectsWrongLengthAndNonHex) {
  EXPECT_FALSE(ParseTunnelId("00a3f09c11d2e4b"));
  EXPECT_FALSE(ParseTunnelId("00a3f09c11d2e4b70"));
  EXPECT_FALSE(ParseTunnelId("00a3f09c11d2e4bg"));
  EXPECT_FALSE(ParseTunnelId(""));
}

TEST(TunnelIdTest, ShardIsTopEightBits) {
  EXPECT_EQ(TunnelShard(0x07ffffffffffffffu), 7u);
  EXPECT_EQ(TunnelShard(0x00a3f09c11d2e4b7u), 0u);
}

TEST(ServiceEntryTest, ParsesNameHostPort) {
  auto e = ParseServiceEntry("rtsp=127.0.0.1:554");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->name, "rtsp");
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 554);
}

TEST(ServiceEntryTest, KeepsBracketsOfIpv6Host) {
  auto e = ParseServiceEntry("http=[::1]:80");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "[::1]");
  EXPECT_EQ(e->port, 80);
}

TEST(ServiceEntryTest, AcceptsHostName) {
  auto e = ParseServiceEntry("onvif=camera.local:65535");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "camera.local");
  EXPECT_EQ(e->port, 65535);
}

TEST(ServiceEntryTest, RejectsPortZeroAndAbove65535) {
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.1:0"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.1:65536"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.1:0554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.1:"));
}

TEST(ServiceEntryTest, RejectsBadIpv4Address) {
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.256:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.1:554"));
}

TEST(ServiceEntryTest, RejectsUnbracketedOrBadIpv6) {
  EXPECT_FALSE(ParseServiceEntry("rtsp=::1:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=[::g]:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=[127.0.0.1]:554"));
}

TEST(ServiceEntryTest, RejectsBadNameOrHost) {
  EXPECT_FALSE(ParseServiceEntry("RTSP=127.0.0.1:554"));
  EXPECT_FALSE(ParseServiceEntry("=127.0.0.1:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=-cam:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=cam..local:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=cam local:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp127.0.0.1:554"));
  EXPECT_FALSE(ParseServiceEntry("rtsp=127.0.0.1"));
}

TEST(ServiceEntryTest, FormatRoundTrips) {
  ServiceEntry e{"rtsp", "[fe80::1]", 8554};
  EXPECT_EQ(FormatServiceEntry(e), "rtsp=[fe80::1]:8554");
  EXPECT_EQ(ParseServiceEntry(FormatServiceEntry(e)), e);
}

}  // namespace
}  // namespace camtunnel::proto
