// HMAC constructions (PROTOCOL.md sections 2, 3, 7). HMAC-SHA256 itself is checked against
// RFC 4231; each construction is checked against its message spelled out byte by byte here, so a
// reordered or missing field fails. The cross-implementation vectors are in test_vectors_test.cc.
#include "proto/crypto.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "proto/encoding.h"

namespace camtunnel::proto {
namespace {

using Buf = std::vector<uint8_t>;

// Sized up front: GCC 12 at -O3 misreports an insert after a brace-initialised vector
// (-Warray-bounds false positive).
Buf Lp(std::span<const uint8_t> part) {
  Buf out(2 + part.size());
  out[0] = static_cast<uint8_t>(part.size() >> 8);
  out[1] = static_cast<uint8_t>(part.size());
  std::copy(part.begin(), part.end(), out.begin() + 2);
  return out;
}
Buf Lp(std::string_view s) { return Lp(AsBytes(s)); }

Buf Concat(std::initializer_list<Buf> parts) {
  Buf out;
  for (const Buf& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

Buf Filled(size_t n, uint8_t v) { return Buf(n, v); }

struct Fixture {
  Digest agent_key = HmacSha256(AsBytes("streamer"), AsBytes("agent"));
  KeyRef key_ref{"k1", 1767225600};
  Buf agent_nonce = Filled(16, 0x11);
  Buf gateway_nonce = Filled(16, 0x22);
  Buf exporter = Filled(32, 0x33);
  HandshakeProofInput Handshake(Transport t) const {
    HandshakeProofInput in;
    in.agent_id = "cam-42";
    in.key_ref = &key_ref;
    in.agent_nonce = agent_nonce;
    in.gateway_nonce = gateway_nonce;
    in.transport = t;
    if (t == Transport::kTls) {
      in.exporter = exporter;
    }
    return in;
  }
};

TEST(HmacTest, MatchesRfc4231TestCase1) {
  Buf key(20, 0x0b);
  EXPECT_EQ(HexEncode(HmacSha256(key, AsBytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(HmacTest, MatchesRfc4231TestCase2) {
  EXPECT_EQ(HexEncode(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacTest, AcceptsEmptyKeyAndMessage) {
  // Known value of HMAC-SHA256("", "").
  EXPECT_EQ(HexEncode(HmacSha256({}, {})),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(HmacTest, LengthPrefixedHashesEachPartWithU16BigEndianLength) {
  Buf key = Filled(32, 7);
  Buf long_part = Filled(300, 0xee);
  Buf expected = Concat({Lp("ab"), Lp(""), Lp(long_part)});
  EXPECT_EQ(HmacLengthPrefixed(key, {AsBytes("ab"), {}, long_part}), HmacSha256(key, expected));
}

TEST(HmacTest, LengthPrefixedDistinguishesFieldBoundaries) {
  Buf key = Filled(32, 7);
  EXPECT_NE(HmacLengthPrefixed(key, {AsBytes("ab"), AsBytes("c")}),
            HmacLengthPrefixed(key, {AsBytes("a"), AsBytes("bc")}));
}

TEST(HmacTest, GivesSameResultsOnConcurrentThreads) {
  // Each thread keys its own context: interleaved use must not mix keys or messages.
  const Digest expected_a = HmacSha256(AsBytes("key-a"), AsBytes("message a"));
  const Digest expected_b = HmacLengthPrefixed(AsBytes("key-b"), {AsBytes("b"), AsBytes("c")});
  bool ok_a = true;
  bool ok_b = true;
  std::thread a([&] {
    for (int i = 0; i < 2000; ++i) {
      ok_a &= HmacSha256(AsBytes("key-a"), AsBytes("message a")) == expected_a;
    }
  });
  std::thread b([&] {
    for (int i = 0; i < 2000; ++i) {
      ok_b &= HmacLengthPrefixed(AsBytes("key-b"), {AsBytes("b"), AsBytes("c")}) == expected_b;
    }
  });
  a.join();
  b.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
}

TEST(HmacDeathTest, LengthPrefixedAbortsOnPartOver65535Bytes) {
  Buf key = Filled(32, 7);
  Buf huge(65536, 0);
  EXPECT_DEATH(HmacLengthPrefixed(key, {huge}), "65535");
}

TEST(ConstantTimeEqualTest, ComparesContents) {
  Buf a = {1, 2, 3};
  Buf b = {1, 2, 3};
  Buf c = {1, 2, 4};
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  EXPECT_FALSE(ConstantTimeEqual(a, c));
}

TEST(ConstantTimeEqualTest, UnequalLengthsCompareUnequal) {
  Buf a = {1, 2, 3};
  Buf prefix = {1, 2};
  EXPECT_FALSE(ConstantTimeEqual(a, prefix));
  EXPECT_FALSE(ConstantTimeEqual(a, {}));
  EXPECT_TRUE(ConstantTimeEqual({}, {}));
}

TEST(TransportTest, NamesAreTlsAndPlain) {
  EXPECT_EQ(TransportName(Transport::kTls), "tls");
  EXPECT_EQ(TransportName(Transport::kPlain), "plain");
}

TEST(DeriveAgentKeyTest, HashesLabelAgentKeyIdAndDecimalExpiry) {
  Buf streamer = Filled(32, 0x5a);
  Buf msg = Concat({Lp("camtunnel/1 agent-key"), Lp("cam-42"), Lp("k1"), Lp("1767225600")});
  EXPECT_EQ(DeriveAgentKey(streamer, "cam-42", KeyRef{"k1", 1767225600}),
            HmacSha256(streamer, msg));
}

TEST(DeriveAgentKeyTest, DiffersPerAgent) {
  Buf streamer = Filled(32, 0x5a);
  KeyRef ref{"k1", 1};
  EXPECT_NE(DeriveAgentKey(streamer, "cam-1", ref), DeriveAgentKey(streamer, "cam-2", ref));
}

TEST(ProofTest, GatewayProofHashesFieldsInContractOrder) {
  Fixture f;
  Buf msg = Concat({Lp("camtunnel/1 gateway-proof"), Lp("cam-42"), Lp("k1"), Lp("1767225600"),
                    Lp(f.agent_nonce), Lp(f.gateway_nonce), Lp("tls"), Lp(f.exporter)});
  EXPECT_EQ(GatewayProof(f.agent_key, f.Handshake(Transport::kTls)), HmacSha256(f.agent_key, msg));
}

TEST(ProofTest, AgentProofInPlainModeHashesEmptyExporter) {
  Fixture f;
  Buf msg = Concat({Lp("camtunnel/1 agent-proof"), Lp("cam-42"), Lp("k1"), Lp("1767225600"),
                    Lp(f.agent_nonce), Lp(f.gateway_nonce), Lp("plain"), Buf{0, 0}});
  EXPECT_EQ(AgentProof(f.agent_key, f.Handshake(Transport::kPlain)), HmacSha256(f.agent_key, msg));
}

TEST(ProofTest, AgentAndGatewayProofsDiffer) {
  Fixture f;
  auto in = f.Handshake(Transport::kTls);
  EXPECT_NE(AgentProof(f.agent_key, in), GatewayProof(f.agent_key, in));
}

TEST(ProofTest, ProofDependsOnExporter) {
  Fixture f;
  auto in = f.Handshake(Transport::kTls);
  Digest before = GatewayProof(f.agent_key, in);
  f.exporter[0] ^= 1;
  EXPECT_NE(GatewayProof(f.agent_key, in), before);
}

TEST(ProofTest, DataProofHashesTunnelIdAsHexText) {
  Fixture f;
  Buf open_nonce = Filled(16, 0x44);
  DataProofInput in;
  in.agent_id = "cam-42";
  in.key_ref = &f.key_ref;
  in.tunnel_id = 0x00a3f09c11d2e4b7;
  in.open_nonce = open_nonce;
  in.transport = Transport::kTls;
  in.exporter = f.exporter;
  Buf msg = Concat({Lp("camtunnel/1 data-proof"), Lp("cam-42"), Lp("k1"), Lp("1767225600"),
                    Lp("00a3f09c11d2e4b7"), Lp(open_nonce), Lp("tls"), Lp(f.exporter)});
  EXPECT_EQ(DataProof(f.agent_key, in), HmacSha256(f.agent_key, msg));
}

TEST(SessionKeyTest, HashesLabelAndBothNonces) {
  Fixture f;
  Buf msg = Concat({Lp("camtunnel/1 session-key"), Lp(f.agent_nonce), Lp(f.gateway_nonce)});
  EXPECT_EQ(SessionKey(f.agent_key, f.agent_nonce, f.gateway_nonce), HmacSha256(f.agent_key, msg));
}

TEST(FrameMacTest, IsFirstSixteenBytesOverDirectionSequenceTypeAndPayload) {
  Digest key = HmacSha256(AsBytes("k"), AsBytes("s"));
  Buf payload = {14, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9};
  Buf msg = Concat({Lp("camtunnel/1 frame-mac"), Lp("agent-to-gateway"),
                    Lp(Buf{0, 0, 0, 0, 0, 0, 1, 2}), Lp(Buf{3}), Lp(payload)});
  Digest full = HmacSha256(key, msg);
  FrameMacBytes mac = FrameMac(key, Direction::kAgentToGateway, 0x0102, 3, payload);
  EXPECT_TRUE(std::equal(mac.begin(), mac.end(), full.begin()));
}

TEST(FrameMacTest, DependsOnDirection) {
  Digest key{};
  EXPECT_NE(FrameMac(key, Direction::kAgentToGateway, 0, 3, {}),
            FrameMac(key, Direction::kGatewayToAgent, 0, 3, {}));
}

TEST(FrameMacTest, DependsOnSequenceAndType) {
  Digest key{};
  EXPECT_NE(FrameMac(key, Direction::kAgentToGateway, 0, 3, {}),
            FrameMac(key, Direction::kAgentToGateway, 1, 3, {}));
  EXPECT_NE(FrameMac(key, Direction::kAgentToGateway, 0, 3, {}),
            FrameMac(key, Direction::kAgentToGateway, 0, 4, {}));
}

TEST(RandomBytesTest, FillsBufferWithFreshBytes) {
  Digest a{};
  Digest b{};
  RandomBytes(a);
  RandomBytes(b);
  EXPECT_NE(a, Digest{});
  EXPECT_NE(a, b);
}

TEST(RandomBytesTest, AcceptsEmptyBuffer) { RandomBytes({}); }

}  // namespace
}  // namespace camtunnel::proto
