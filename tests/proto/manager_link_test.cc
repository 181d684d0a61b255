// The manager link (PROTOCOL.md section 10): proofs, sealing, ASSIGN, the upgrade head, and the
// vectors of proto/manager_test_vectors.json computed by tests/proto/manager_vectors.py, an
// independent implementation (Python hmac + cryptography).
#include "proto/manager_link.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proto/encoding.h"
#include "proto/upgrade.h"
#include "tests/proto/manager_vectors.h"

namespace camtunnel::proto {
namespace {

using nlohmann::json;
using Buf = std::vector<uint8_t>;

const json& Section(const char* name) { return test_util::ManagerVectorSection(name); }

Buf Hex(const json& v) { return HexDecode(v.get<std::string>()).value_or(Buf{}); }

template <typename A>
A Fixed(const json& v) {
  Buf b = Hex(v);
  A out{};
  EXPECT_EQ(b.size(), out.size());
  std::copy_n(b.begin(), std::min(b.size(), out.size()), out.begin());
  return out;
}

ManagerProofInput ProofInput(const json& v, Buf& an, Buf& mn, Buf& ex, std::string& id) {
  an = Hex(v["agent_nonce"]);
  mn = Hex(v["manager_nonce"]);
  ex = Hex(v["exporter"]);
  id = v["agent_id"].get<std::string>();
  return {.agent_id = id,
          .agent_nonce = an,
          .manager_nonce = mn,
          .transport = v["transport"] == "tls" ? Transport::kTls : Transport::kPlain,
          .exporter = ex};
}

TEST(ManagerLinkVectors, ManagerProofs) {
  for (const json& v : Section("manager_proof")) {
    Buf an, mn, ex;
    std::string id;
    auto in = ProofInput(v, an, mn, ex, id);
    EXPECT_EQ(HexEncode(ManagerProof(Fixed<AgentSecret>(v["secret"]), in)), v["proof"]);
  }
  for (const json& v : Section("manager_agent_proof")) {
    Buf an, mn, ex;
    std::string id;
    auto in = ProofInput(v, an, mn, ex, id);
    EXPECT_EQ(HexEncode(ManagerAgentProof(Fixed<AgentSecret>(v["secret"]), in)), v["proof"]);
  }
}

TEST(ManagerLinkVectors, DerivedKeys) {
  for (const json& v : Section("manager_session_key")) {
    EXPECT_EQ(HexEncode(ManagerSessionKey(Fixed<AgentSecret>(v["secret"]), Hex(v["agent_nonce"]),
                                          Hex(v["manager_nonce"]))),
              v["session_key"]);
  }
  for (const json& v : Section("key_seal_key")) {
    EXPECT_EQ(
        HexEncode(KeySealKey(Fixed<AgentSecret>(v["secret"]), v["agent_id"].get<std::string>())),
        v["seal_key"]);
  }
  for (const json& v : Section("reactivation_proof")) {
    EXPECT_EQ(HexEncode(ReactivationProof(Fixed<AgentSecret>(v["secret"]),
                                          v["agent_id"].get<std::string>())),
              v["proof"]);
  }
  for (const json& v : Section("factory_secret")) {
    EXPECT_EQ(HexEncode(FactorySecret(Hex(v["master"]), v["serial"].get<std::string>())),
              v["factory_secret"]);
  }
}

TEST(ManagerLinkVectors, AssignEncodesAndOpens) {
  for (const json& v : Section("assign")) {
    const std::string agent = v["agent_id"];
    const Digest seal = KeySealKey(Fixed<AgentSecret>(v["secret"]), agent);
    const Buf streamer_key = Hex(v["streamer_key"]);
    FrameBuilder builder(FrameType::kAssign);
    std::vector<AssignedStreamer> expected;
    for (const json& s : v["streamers"]) {
      AssignedStreamer a{.url = s["url"], .key_ref = *ParseKeyRef(s["key_ref"].get<std::string>())};
      a.agent_key = DeriveAgentKey(streamer_key, agent, a.key_ref);
      EXPECT_EQ(HexEncode(a.agent_key), s["agent_key"]);
      Buf field = EncodeAssignedStreamer(seal, agent, a, Hex(s["seal_nonce"]));
      EXPECT_EQ(HexEncode(field), s["field"]);
      builder.Add(Tag::kStreamer, field);
      expected.push_back(a);
    }
    const Buf encoded = builder.Finish();
    EXPECT_EQ(HexEncode(encoded), v["encoded"]);
    Frame frame(encoded[0], Buf(encoded.begin() + 4, encoded.end()));
    ASSERT_TRUE(frame.Valid());
    std::string error;
    auto parsed = ParseAssign(seal, agent, frame, &error);
    ASSERT_TRUE(parsed) << error;
    EXPECT_EQ(*parsed, expected);
  }
}

// Plain manager links (section 10.2): section 7 MACs under the manager session key.
TEST(ManagerLinkVectors, PlainLinkFramesSealAndOpen) {
  for (const json& v : Section("manager_sealed_frames")) {
    const Digest key = ManagerSessionKey(Fixed<AgentSecret>(v["secret"]), Hex(v["agent_nonce"]),
                                         Hex(v["manager_nonce"]));
    EXPECT_EQ(HexEncode(key), v["session_key"]);
    const Direction direction = v["direction"] == "agent-to-gateway" ? Direction::kAgentToGateway
                                                                     : Direction::kGatewayToAgent;
    const uint64_t sequence = v["sequence"].get<uint64_t>();
    FrameSealer sealer(key, direction);
    FrameSealer filler_sealer(key, direction);
    FrameOpener opener(key, direction);
    for (uint64_t i = 0; i < sequence; ++i) {  // the frames before this one on the link
      FrameBuilder filler(FrameType::kPing);   // Seal() appends the mac: one builder per use
      filler.AddU64(Tag::kSequence, i);
      FrameBuilder same(FrameType::kPing);
      same.AddU64(Tag::kSequence, i);
      sealer.Seal(filler);
      const Buf bytes = filler_sealer.Seal(same);
      Frame f(bytes[0], Buf(bytes.begin() + 4, bytes.end()));
      ASSERT_TRUE(opener.Open(f));
    }
    FrameBuilder builder(static_cast<uint8_t>(v["type"].get<int>()));
    for (const json& f : v["fields"]) {
      builder.Add(static_cast<Tag>(f["tag"].get<int>()), Hex(f["value"]));
    }
    const Buf encoded = sealer.Seal(builder);
    EXPECT_EQ(HexEncode(encoded), v["encoded"]);
    Frame frame(encoded[0], Buf(encoded.begin() + 4, encoded.end()));
    Frame replayed = frame;
    ASSERT_TRUE(opener.Open(frame));
    EXPECT_TRUE(frame.Valid());
    EXPECT_FALSE(opener.Open(replayed));  // the same frame again is the wrong sequence
  }
}

class AssignTest : public ::testing::Test {
 protected:
  AgentSecret secret_{};
  Digest seal_ = KeySealKey(secret_, "cam-1");
  AssignedStreamer a_{.url = "https://gw.example:8443", .key_ref = {"k1", 1767225600}};

  Frame Parse(const std::vector<uint8_t>& bytes) {
    return Frame(bytes[0], std::vector<uint8_t>(bytes.begin() + 4, bytes.end()));
  }
};

TEST_F(AssignTest, RoundTripsOrderedList) {
  AssignedStreamer b{.url = "http://10.0.0.2", .key_ref = {"k2", 5}};
  b.agent_key[0] = 7;
  std::vector<AssignedStreamer> list{a_, b};
  Frame frame = Parse(BuildAssign(seal_, "cam-1", list).Finish());
  std::string error;
  auto parsed = ParseAssign(seal_, "cam-1", frame, &error);
  ASSERT_TRUE(parsed) << error;
  EXPECT_EQ(*parsed, list);
}

TEST_F(AssignTest, RejectsEntrySealedForAnotherAgent) {
  Frame frame = Parse(BuildAssign(seal_, "cam-2", std::span(&a_, 1)).Finish());
  std::string error;
  EXPECT_FALSE(ParseAssign(seal_, "cam-1", frame, &error));
  EXPECT_NE(error.find("does not open"), std::string::npos) << error;
}

TEST_F(AssignTest, RejectsEntryUnderAnotherSecret) {
  AgentSecret other{};
  other[0] = 1;
  Frame frame = Parse(BuildAssign(KeySealKey(other, "cam-1"), "cam-1", std::span(&a_, 1)).Finish());
  std::string error;
  EXPECT_FALSE(ParseAssign(seal_, "cam-1", frame, &error));
}

TEST_F(AssignTest, RejectsTamperedUrl) {
  uint8_t nonce[kSealNonceBytes] = {};
  Buf field = EncodeAssignedStreamer(seal_, "cam-1", a_, nonce);
  field[2 + 8] ^= 0x01;  // a byte of the host name: the URL is associated data
  StreamerFieldParse parsed = DecodeAssignedStreamer(seal_, "cam-1", field);
  EXPECT_FALSE(parsed.streamer);
}

TEST_F(AssignTest, RejectsEmptyAndOversizedLists) {
  std::string error;
  EXPECT_FALSE(
      ParseAssign(seal_, "cam-1", Parse(FrameBuilder(FrameType::kAssign).Finish()), &error));
  std::vector<AssignedStreamer> many(kMaxAssignedStreamers + 1, a_);
  EXPECT_FALSE(
      ParseAssign(seal_, "cam-1", Parse(BuildAssign(seal_, "cam-1", many).Finish()), &error));
  EXPECT_NE(error.find("more than"), std::string::npos);
}

TEST_F(AssignTest, RejectsTruncatedField) {
  uint8_t nonce[kSealNonceBytes] = {};
  Buf field = EncodeAssignedStreamer(seal_, "cam-1", a_, nonce);
  field.pop_back();
  EXPECT_EQ(DecodeAssignedStreamer(seal_, "cam-1", field).error, StreamerFieldError::kMalformed);
}

TEST(StreamerUrl, AcceptsAndRejects) {
  EXPECT_TRUE(IsValidStreamerUrl("https://gw.example.com"));
  EXPECT_TRUE(IsValidStreamerUrl("http://127.0.0.1:8080/"));
  EXPECT_TRUE(IsValidStreamerUrl("https://[::1]:443"));
  EXPECT_FALSE(IsValidStreamerUrl("ftp://gw"));
  EXPECT_FALSE(IsValidStreamerUrl("https://"));
  EXPECT_FALSE(IsValidStreamerUrl("https://gw:0"));
  EXPECT_FALSE(IsValidStreamerUrl("https://gw:65536"));
  EXPECT_FALSE(IsValidStreamerUrl("https://gw/path"));
  EXPECT_FALSE(IsValidStreamerUrl("https://user@gw"));
  EXPECT_FALSE(IsValidStreamerUrl("https://" + std::string(300, 'a')));
}

// Found by fuzz/activation_answer_fuzz.cc: hosts the agent cannot dial (its gateway URL parser
// refuses them) were accepted as manager URLs, so an activated agent asked for activation again
// and again. Every one of these is refused by the agent.
TEST(StreamerUrl, RejectsHostsTheAgentCannotDial) {
  EXPECT_FALSE(IsValidStreamerUrl("http://1"));
  EXPECT_FALSE(IsValidStreamerUrl("https://1.2.3.999"));
  EXPECT_FALSE(IsValidStreamerUrl("https://[1]:443"));
  EXPECT_FALSE(IsValidStreamerUrl("https://[]"));
  EXPECT_FALSE(IsValidStreamerUrl("https://-gw"));
  EXPECT_FALSE(IsValidStreamerUrl("https://gw..example"));
  EXPECT_FALSE(IsValidStreamerUrl("https://" + std::string(64, 'a') + ".example"));
  EXPECT_TRUE(IsValidStreamerUrl("https://" + std::string(63, 'a') + ".example"));
  EXPECT_TRUE(IsValidStreamerUrl("http://[fd00::1]:7080"));
  EXPECT_TRUE(IsValidStreamerUrl("http://10.0.0.5"));
}

TEST(ManagerUpgrade, BuildsAndParses) {
  Nonce nonce{};
  nonce[3] = 9;
  std::string head_text = BuildManagerRequest("mgr.example", "cam-9", nonce);
  RequestHead head;
  ASSERT_EQ(ParseRequestHead(head_text, &head), HeadResult::kComplete);
  auto parsed = ParseManagerRequest(head);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->agent_id, "cam-9");
  EXPECT_EQ(parsed->agent_nonce, nonce);
}

TEST(ManagerUpgrade, RejectsNonCanonicalAgentAndDuplicates) {
  RequestHead head;
  std::string bad =
      "GET /camtunnel/v1/manager HTTP/1.1\r\nHost: m\r\nConnection: Upgrade\r\nUpgrade: "
      "camtunnel/1\r\nCamtunnel-Agent: Cam-9\r\nCamtunnel-Nonce: AAAAAAAAAAAAAAAAAAAAAA\r\n\r\n";
  ASSERT_EQ(ParseRequestHead(bad, &head), HeadResult::kComplete);
  EXPECT_FALSE(ParseManagerRequest(head));
  std::string dup =
      "GET /camtunnel/v1/manager HTTP/1.1\r\nHost: m\r\nConnection: Upgrade\r\nUpgrade: "
      "camtunnel/1\r\nCamtunnel-Agent: cam-9\r\nCamtunnel-Agent: cam-8\r\nCamtunnel-Nonce: "
      "AAAAAAAAAAAAAAAAAAAAAA\r\n\r\n";
  ASSERT_EQ(ParseRequestHead(dup, &head), HeadResult::kComplete);
  EXPECT_FALSE(ParseManagerRequest(head));
}

TEST(ManagerProofs, DifferByRoleAndTransport) {
  AgentSecret s{};
  Nonce an{}, mn{};
  Buf exporter(32, 1);
  ManagerProofInput tls{.agent_id = "cam-1",
                        .agent_nonce = an,
                        .manager_nonce = mn,
                        .transport = Transport::kTls,
                        .exporter = exporter};
  ManagerProofInput plain = tls;
  plain.transport = Transport::kPlain;
  plain.exporter = {};
  EXPECT_NE(ManagerProof(s, tls), ManagerAgentProof(s, tls));
  EXPECT_NE(ManagerProof(s, tls), ManagerProof(s, plain));
}

}  // namespace
}  // namespace camtunnel::proto
