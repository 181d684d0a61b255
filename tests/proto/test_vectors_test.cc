// Reproduces every vector of proto/test_vectors.json (PROTOCOL.md section 9), which an
// independent Python implementation (tests/e2e/camtunnel_client.py) computed from the contract
// alone. A mismatch means one of the two misreads PROTOCOL.md.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::proto {
namespace {

using nlohmann::json;
using Buf = std::vector<uint8_t>;

const json& Vectors() {
  static const json vectors = [] {
    std::ifstream in(CAMTUNNEL_SOURCE_DIR "/proto/test_vectors.json");
    return json::parse(in, nullptr, /*allow_exceptions=*/false);
  }();
  return vectors;
}

// The vectors of one section; fails the test when the section is missing or empty, so a renamed
// key cannot turn into a silently passing loop.
const json& Section(const char* name) {
  static const json kEmpty = json::array();
  const json& all = Vectors();
  if (all.is_discarded() || !all.contains(name) || !all[name].is_array() || all[name].empty()) {
    ADD_FAILURE() << "proto/test_vectors.json: missing or empty section " << name;
    return kEmpty;
  }
  return all[name];
}

Buf Hex(const json& v) {
  auto bytes = HexDecode(v.get<std::string>());
  EXPECT_TRUE(bytes) << v;
  return bytes.value_or(Buf{});
}

template <typename Array>
std::string HexOf(const Array& a) {
  return HexEncode(a);
}

KeyRef Ref(const json& v) {
  auto ref = ParseKeyRef(v.get<std::string>());
  EXPECT_TRUE(ref) << v;
  return ref.value_or(KeyRef{});
}

Digest Key(const json& v) {
  Buf bytes = Hex(v);
  Digest d{};
  EXPECT_EQ(bytes.size(), d.size()) << v;
  std::copy_n(bytes.begin(), std::min(bytes.size(), d.size()), d.begin());
  return d;
}

Transport TransportOf(const json& v) {
  const std::string t = v.get<std::string>();
  EXPECT_TRUE(t == "tls" || t == "plain") << t;
  return t == "tls" ? Transport::kTls : Transport::kPlain;
}

Direction DirectionOf(const json& v) {
  const std::string d = v.get<std::string>();
  EXPECT_TRUE(d == "agent-to-gateway" || d == "gateway-to-agent") << d;
  return d == "agent-to-gateway" ? Direction::kAgentToGateway : Direction::kGatewayToAgent;
}

FrameBuilder Builder(const json& v) {
  FrameBuilder b(v["type"].get<uint8_t>());
  for (const json& field : v["fields"]) {
    b.Add(static_cast<Tag>(field["tag"].get<uint8_t>()), Hex(field["value"]));
  }
  return b;
}

Frame DecodeOne(const Buf& wire) {
  FrameDecoder decoder;
  std::span<const uint8_t> in = wire;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kFrame);
  EXPECT_TRUE(in.empty());
  return frame;
}

void ExpectFields(const Frame& frame, const json& v) {
  ASSERT_EQ(frame.fields().size(), v["fields"].size());
  for (size_t i = 0; i < frame.fields().size(); ++i) {
    const Field& got = frame.fields()[i];
    EXPECT_EQ(got.tag, v["fields"][i]["tag"].get<uint8_t>());
    EXPECT_EQ(HexEncode(got.value), v["fields"][i]["value"].get<std::string>());
  }
}

TEST(TestVectorsTest, FileParses) {
  ASSERT_FALSE(Vectors().is_discarded())
      << CAMTUNNEL_SOURCE_DIR "/proto/test_vectors.json is missing or not JSON";
}

TEST(TestVectorsTest, DerivesAgentKeys) {
  for (const json& v : Section("derive_agent_key")) {
    KeyRef ref = Ref(v["key_ref"]);
    EXPECT_EQ(HexOf(DeriveAgentKey(Hex(v["streamer_key"]), v["agent_id"].get<std::string>(), ref)),
              v["agent_key"].get<std::string>())
        << v;
  }
}

HandshakeProofInput HandshakeInput(const json& v, const KeyRef& ref, const std::string& agent_id,
                                   const Buf& agent_nonce, const Buf& gateway_nonce,
                                   const Buf& exporter) {
  HandshakeProofInput in;
  in.agent_id = agent_id;
  in.key_ref = &ref;
  in.agent_nonce = agent_nonce;
  in.gateway_nonce = gateway_nonce;
  in.transport = TransportOf(v["transport"]);
  in.exporter = exporter;
  return in;
}

TEST(TestVectorsTest, ComputesGatewayProofs) {
  for (const json& v : Section("gateway_proof")) {
    const KeyRef ref = Ref(v["key_ref"]);
    const std::string agent_id = v["agent_id"];
    const Buf an = Hex(v["agent_nonce"]), gn = Hex(v["gateway_nonce"]), ex = Hex(v["exporter"]);
    EXPECT_EQ(
        HexOf(GatewayProof(Key(v["agent_key"]), HandshakeInput(v, ref, agent_id, an, gn, ex))),
        v["proof"].get<std::string>())
        << v;
  }
}

TEST(TestVectorsTest, ComputesAgentProofs) {
  for (const json& v : Section("agent_proof")) {
    const KeyRef ref = Ref(v["key_ref"]);
    const std::string agent_id = v["agent_id"];
    const Buf an = Hex(v["agent_nonce"]), gn = Hex(v["gateway_nonce"]), ex = Hex(v["exporter"]);
    EXPECT_EQ(HexOf(AgentProof(Key(v["agent_key"]), HandshakeInput(v, ref, agent_id, an, gn, ex))),
              v["proof"].get<std::string>())
        << v;
  }
}

TEST(TestVectorsTest, ComputesDataProofs) {
  for (const json& v : Section("data_proof")) {
    const KeyRef ref = Ref(v["key_ref"]);
    const std::string agent_id = v["agent_id"];
    const Buf open_nonce = Hex(v["open_nonce"]), exporter = Hex(v["exporter"]);
    auto tunnel = ParseTunnelId(v["tunnel_id"].get<std::string>());
    ASSERT_TRUE(tunnel) << v;
    DataProofInput in;
    in.agent_id = agent_id;
    in.key_ref = &ref;
    in.tunnel_id = *tunnel;
    in.open_nonce = open_nonce;
    in.transport = TransportOf(v["transport"]);
    in.exporter = exporter;
    EXPECT_EQ(HexOf(DataProof(Key(v["agent_key"]), in)), v["proof"].get<std::string>()) << v;
  }
}

TEST(TestVectorsTest, DerivesSessionKeys) {
  for (const json& v : Section("session_key")) {
    EXPECT_EQ(
        HexOf(SessionKey(Key(v["agent_key"]), Hex(v["agent_nonce"]), Hex(v["gateway_nonce"]))),
        v["session_key"].get<std::string>())
        << v;
  }
}

TEST(TestVectorsTest, ComputesFrameMacs) {
  for (const json& v : Section("frame_mac")) {
    EXPECT_EQ(
        HexOf(FrameMac(Key(v["session_key"]), DirectionOf(v["direction"]),
                       v["sequence"].get<uint64_t>(), v["type"].get<uint8_t>(), Hex(v["payload"]))),
        v["mac"].get<std::string>())
        << v;
  }
}

TEST(TestVectorsTest, EncodesFrames) {
  for (const json& v : Section("frames")) {
    EXPECT_EQ(HexEncode(Builder(v).Finish()), v["encoded"].get<std::string>()) << v["name"];
  }
}

TEST(TestVectorsTest, DecodesFramesAsValid) {
  for (const json& v : Section("frames")) {
    SCOPED_TRACE(v["name"].get<std::string>());
    Frame frame = DecodeOne(Hex(v["encoded"]));
    EXPECT_TRUE(frame.Valid());
    EXPECT_EQ(frame.type(), v["type"].get<uint8_t>());
    ExpectFields(frame, v);
  }
}

TEST(TestVectorsTest, CoversEveryFrameTypeOneToTwelve) {
  bool seen[13] = {};
  for (const json& v : Section("frames")) {
    const auto type = v["type"].get<unsigned>();
    if (type < 13) {
      seen[type] = true;
    }
  }
  for (unsigned t = 1; t <= 12; ++t) {
    EXPECT_TRUE(seen[t]) << "no vector for frame type " << t;
  }
}

// Sealer and opener count frames from 0, so a vector at sequence N is reached by first sealing
// (or opening) N other frames in the same direction.
TEST(TestVectorsTest, SealsFrames) {
  for (const json& v : Section("sealed_frames")) {
    const Direction dir = DirectionOf(v["direction"]);
    FrameSealer sealer(Key(v["session_key"]), dir);
    for (uint64_t i = 0; i < v["sequence"].get<uint64_t>(); ++i) {
      FrameBuilder filler(FrameType::kPing);
      sealer.Seal(filler.AddU64(Tag::kSequence, i));
    }
    FrameBuilder builder = Builder(v);
    EXPECT_EQ(HexEncode(sealer.Seal(builder)), v["encoded"].get<std::string>()) << v;
  }
}

TEST(TestVectorsTest, OpensSealedFrames) {
  for (const json& v : Section("sealed_frames")) {
    const Digest key = Key(v["session_key"]);
    const Direction dir = DirectionOf(v["direction"]);
    FrameSealer filler_sealer(key, dir);
    FrameOpener opener(key, dir);
    for (uint64_t i = 0; i < v["sequence"].get<uint64_t>(); ++i) {
      FrameBuilder filler(FrameType::kPing);
      Frame frame = DecodeOne(filler_sealer.Seal(filler.AddU64(Tag::kSequence, i)));
      ASSERT_TRUE(opener.Open(frame));
    }
    Frame frame = DecodeOne(Hex(v["encoded"]));
    EXPECT_TRUE(frame.Valid());
    ASSERT_TRUE(opener.Open(frame)) << v;
    EXPECT_TRUE(frame.Valid());
    EXPECT_EQ(frame.type(), v["type"].get<uint8_t>());
    ExpectFields(frame, v);
  }
}

TEST(TestVectorsTest, SealedFrameFailsInOtherDirection) {
  for (const json& v : Section("sealed_frames")) {
    if (v["sequence"].get<uint64_t>() != 0) {
      continue;
    }
    const Direction other = DirectionOf(v["direction"]) == Direction::kAgentToGateway
                                ? Direction::kGatewayToAgent
                                : Direction::kAgentToGateway;
    FrameOpener opener(Key(v["session_key"]), other);
    Frame frame = DecodeOne(Hex(v["encoded"]));
    EXPECT_FALSE(opener.Open(frame)) << v;
  }
}

// The base64url spellings quoted in PROTOCOL.md's summary of the vectors.
TEST(TestVectorsTest, MatchesBase64UrlQuotedInProtocol) {
  Buf agent_nonce, gateway_nonce;
  for (uint8_t i = 0; i < 16; ++i) {
    agent_nonce.push_back(0xa0 + i);
    gateway_nonce.push_back(0xb0 + i);
  }
  EXPECT_EQ(Base64UrlEncode(agent_nonce), "oKGio6SlpqeoqaqrrK2urw");
  EXPECT_EQ(Base64UrlEncode(gateway_nonce), "sLGys7S1tre4ubq7vL2-vw");
  const json& proofs = Section("gateway_proof");
  for (const json& v : proofs) {
    const std::string expected = v["transport"] == "tls"
                                     ? "Yr9ONg0RPYAvUg4binzxuOCymvHk4NDcosQg7Tr4Dac"
                                     : "fxaOIr4iK-aITgYgExlpZFjmQab-JvPg-lCqQegexS8";
    EXPECT_EQ(Base64UrlEncode(Hex(v["proof"])), expected);
  }
}

}  // namespace
}  // namespace camtunnel::proto
