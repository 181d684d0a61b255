// The managing server's side of the activation hand-over (PROTOCOL.md section 10.4): only a
// request MACed with the hand-over key, fresh, and never seen before enrols a camera; the
// secret comes back sealed to that serial and request; the agent record rules of section 10.1
// hold as in one deployment.
#include "manager/handover_service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proto/encoding.h"
#include "tests/manager/test_store.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1767225600000;

class HandoverServiceTest : public ::testing::Test {
 protected:
  HandoverServiceTest()
      : keys_(proto::DeriveHandoverKeys(std::vector<uint8_t>(32, 7))),
        service_(store_.store(), keys_) {}

  // A request as the activation server builds it; `nonce_byte` makes each one distinct.
  std::string Body(const std::string& serial, uint8_t nonce_byte, int64_t ts = kNow,
                   const std::optional<proto::Digest>& proof = std::nullopt) {
    json doc{{"serial", serial},
             {"operator", "acme"},
             {"ts_ms", ts},
             {"nonce", proto::HexEncode(std::vector<uint8_t>(16, nonce_byte))}};
    if (proof) {
      doc["agent_proof"] = proto::HexEncode(*proof);
    }
    return doc.dump();
  }
  HandoverAnswer Send(const std::string& body, int64_t now = kNow) {
    return SendRaw(proto::HexEncode(proto::HandoverRequestMac(keys_, body)), body, now);
  }
  HandoverAnswer SendRaw(std::string_view mac_hex, std::string_view body, int64_t now) {
    std::optional<HandoverAnswer> out;
    service_.Handle(mac_hex, body, now, [&out](HandoverAnswer a) { out = std::move(a); });
    EXPECT_TRUE(store_.RunUntil([&out] { return out.has_value(); }));
    return out.value_or(HandoverAnswer{});
  }

  const proto::HandoverKeys keys_;
  test_util::TestStore store_;
  HandoverService service_;
};

TEST_F(HandoverServiceTest, EnrolsAndSealsTheSecretToTheRequest) {
  HandoverAnswer a = Send(Body("sn-1", 1));
  ASSERT_EQ(a.status, 200) << a.body;
  const json j = json::parse(a.body);
  EXPECT_EQ(j["result"], "activated");
  auto sealed = proto::HexDecode(j["sealed_secret"].get<std::string>());
  ASSERT_TRUE(sealed);
  auto secret = proto::OpenHandoverSecret(keys_, "sn-1", std::vector<uint8_t>(16, 1), *sealed);
  ASSERT_TRUE(secret);
  auto record = store_.FindAgent("sn-1");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->secret, *secret);
  EXPECT_EQ((*record)->operator_id, "acme");
  EXPECT_EQ(a.body.find(proto::HexEncode(*secret)), std::string::npos);  // never in clear
}

TEST_F(HandoverServiceTest, RefusesAWrongOrMissingMacBeforeReadingTheBody) {
  const std::string body = Body("sn-1", 1);
  const proto::HandoverKeys other = proto::DeriveHandoverKeys(std::vector<uint8_t>(32, 8));
  EXPECT_EQ(SendRaw(proto::HexEncode(proto::HandoverRequestMac(other, body)), body, kNow).status,
            401);
  EXPECT_EQ(SendRaw("", body, kNow).status, 401);
  EXPECT_EQ(SendRaw("zz", "not json", kNow).status, 401);
  // A body changed after it was MACed (here: another serial).
  std::string tampered = body;
  tampered.replace(tampered.find("sn-1"), 4, "sn-2");
  EXPECT_EQ(
      SendRaw(proto::HexEncode(proto::HandoverRequestMac(keys_, body)), tampered, kNow).status,
      401);
  EXPECT_EQ(service_.counts().at("bad_mac"), 4u);
  EXPECT_FALSE(store_.FindAgent("sn-1")->has_value());
  EXPECT_FALSE(store_.FindAgent("sn-2")->has_value());
}

TEST_F(HandoverServiceTest, RefusesAReplayedRequest) {
  const std::string body = Body("sn-1", 1);
  ASSERT_EQ(Send(body).status, 200);
  // The agent is deactivated; replaying the recorded request must not bring it back.
  ASSERT_TRUE(store_.SetState("sn-1", AgentState::kDeactivated).ok());
  HandoverAnswer again = Send(body, kNow + 1000);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.result, "replayed");
  EXPECT_EQ((*store_.FindAgent("sn-1"))->state, AgentState::kDeactivated);
}

TEST_F(HandoverServiceTest, RefusesARequestOutsideTheWindow) {
  EXPECT_EQ(Send(Body("sn-1", 1, kNow - proto::kHandoverWindowMs - 1)).result, "stale");
  EXPECT_EQ(Send(Body("sn-1", 2, kNow + proto::kHandoverWindowMs + 1)).result, "stale");
  EXPECT_EQ(Send(Body("sn-1", 3, kNow - proto::kHandoverWindowMs)).status, 200);
}

TEST_F(HandoverServiceTest, AppliesTheAgentRules) {
  ASSERT_EQ(Send(Body("sn-1", 1)).status, 200);
  ASSERT_TRUE(store_.RecordStatus("sn-1", "linked", kNow).ok());
  const proto::AgentSecret secret = (*store_.FindAgent("sn-1"))->secret;
  HandoverAnswer again = Send(Body("sn-1", 2));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.result, "already_active");
  HandoverAnswer wrong = Send(Body("sn-1", 3, kNow, proto::Digest{}));
  EXPECT_EQ(wrong.result, "bad_agent_proof");
  HandoverAnswer re = Send(Body("sn-1", 4, kNow, proto::ReactivationProof(secret, "sn-1")));
  ASSERT_EQ(re.status, 200) << re.body;
  EXPECT_EQ(json::parse(re.body)["result"], "reactivated");
  EXPECT_FALSE(json::parse(re.body).contains("sealed_secret"));
  EXPECT_EQ((*store_.FindAgent("sn-1"))->secret, secret);
}

TEST_F(HandoverServiceTest, ADeactivatedSerialStaysOutForTheProofOfItsOldSecret) {
  ASSERT_EQ(Send(Body("sn-1", 1)).status, 200);
  const proto::AgentSecret secret = (*store_.FindAgent("sn-1"))->secret;
  ASSERT_TRUE(store_.SetState("sn-1", AgentState::kDeactivated).ok());
  HandoverAnswer back = Send(Body("sn-1", 2, kNow, proto::ReactivationProof(secret, "sn-1")));
  EXPECT_EQ(back.status, 403);
  EXPECT_EQ(back.result, "deactivated");
  EXPECT_FALSE(json::parse(back.body).contains("sealed_secret"));
  EXPECT_EQ((*store_.FindAgent("sn-1"))->state, AgentState::kDeactivated);
}

TEST_F(HandoverServiceTest, RefusesMalformedRequests) {
  for (const std::string& body :
       {std::string("[]"),
        std::string(R"({"serial":"SN-1","operator":"a","ts_ms":1,"nonce":"00"})"),
        json{{"serial", "sn-1"}, {"operator", "acme"}, {"ts_ms", kNow}}.dump(),
        json{{"serial", "sn-1"}, {"operator", ""}, {"ts_ms", kNow}, {"nonce", std::string(32, 'a')}}
            .dump(),
        json{{"serial", "sn-1"}, {"operator", "a"}, {"ts_ms", "1"}, {"nonce", std::string(32, 'a')}}
            .dump(),
        json{{"serial", "sn-1"},
             {"operator", "a"},
             {"ts_ms", kNow},
             {"nonce", std::string(32, 'a')},
             {"agent_proof", "00"}}
            .dump()}) {
    EXPECT_EQ(Send(body).status, 400) << body;
  }
  EXPECT_FALSE(store_.FindAgent("sn-1")->has_value());
}

}  // namespace
}  // namespace camtunnel::manager
