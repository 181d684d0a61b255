// Activation rules (PROTOCOL.md section 10.1): one secret per device, ever; a dumped factory
// secret activates only its own serial; reactivation needs the existing secret; a deactivated
// serial stays out for the proof of its old secret; rate limits; every attempt counted and
// audited.
#include "manager/activation.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "manager/claims.h"
#include "proto/activation_message.h"
#include "proto/encoding.h"
#include "proto/manager_link.h"
#include "tests/manager/test_store.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

using test_util::TestStore;

// The answer of a service, once the store's results have come back to the shard.
ActivationAnswer HandleNow(TestStore& store, ActivationService& service, std::string_view body,
                           std::string_view source, int64_t now_ms) {
  std::optional<ActivationAnswer> out;
  service.Handle(body, source, now_ms, [&out](ActivationAnswer a) { out = std::move(a); });
  EXPECT_TRUE(store.RunUntil([&out] { return out.has_value(); }));
  return out.value_or(ActivationAnswer{});
}

class ActivationTest : public ::testing::Test {
 protected:
  ActivationTest()
      : enroller_(store_.store()),
        service_(store_.store(), enroller_,
                 ActivationOptions{.factory_master = std::vector<uint8_t>(32, 9),
                                   .operators = {"acme"},
                                   .manager_url = "https://mgr:7443",
                                   .rate_burst = 100,
                                   .rate_refill_ms = 1000}) {}

  std::string Factory(const std::string& serial) {
    return proto::HexEncode(proto::FactorySecret(std::vector<uint8_t>(32, 9), serial));
  }
  ActivationAnswer Post(const json& body, const std::string& source = "10.0.0.1") {
    return HandleNow(store_, service_, body.dump(), source, ++now_);
  }

  TestStore store_;
  LocalEnroller enroller_;
  ActivationService service_;
  int64_t now_ = 1000;
};

TEST_F(ActivationTest, IssuesSecretOnFirstActivation) {
  ActivationAnswer a =
      Post({{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}});
  ASSERT_EQ(a.status, 200) << a.body;
  json j = json::parse(a.body);
  EXPECT_EQ(j["agent_id"], "sn-1");
  EXPECT_EQ(j["manager_url"], "https://mgr:7443");
  auto found = store_.FindAgent("sn-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(j["agent_secret"], proto::HexEncode((*found)->secret));
  EXPECT_EQ(service_.counts().at("activated"), 1u);
}

TEST_F(ActivationTest, HandsOutEveryManagerOfTheDeployment) {
  ActivationService fleet(store_.store(), enroller_,
                          ActivationOptions{.factory_master = std::vector<uint8_t>(32, 9),
                                            .operators = {"acme"},
                                            .manager_url = "https://mgr:7443",
                                            .manager_urls = {"https://m1:7443", "https://m2:7443"},
                                            .rate_burst = 100});
  json req{{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}};
  ActivationAnswer a = HandleNow(store_, fleet, req.dump(), "10.0.0.1", 1);
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(json::parse(a.body)["manager_urls"], "https://m1:7443 https://m2:7443");
  // What a camera reads of it (a flat object of strings, as agents parse it).
  std::string error;
  auto parsed = proto::ParseActivationResult(a.body, &error);
  ASSERT_TRUE(parsed) << error;
  EXPECT_EQ(parsed->manager_urls, (std::vector<std::string>{"https://m1:7443", "https://m2:7443"}));
}

TEST_F(ActivationTest, RejectsAnotherDevicesFactorySecret) {
  // The secret of a dumped sn-1 firmware must not activate sn-2.
  ActivationAnswer a =
      Post({{"serial", "sn-2"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}});
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(a.result, "bad_factory_secret");
  EXPECT_FALSE(store_.FindAgent("sn-2")->has_value());
}

TEST_F(ActivationTest, RefusesSecondActivationWithoutAgentProof) {
  json req{{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}};
  ASSERT_EQ(Post(req).status, 200);
  // The agent has used its secret (a verified HELLO on the manager link records "linked").
  ASSERT_TRUE(store_.RecordStatus("sn-1", "linked", ++now_).ok());
  const proto::AgentSecret before = (*store_.FindAgent("sn-1"))->secret;
  ActivationAnswer again = Post(req);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body.find("agent_secret"), std::string::npos);
  EXPECT_EQ((*store_.FindAgent("sn-1"))->secret, before);
  EXPECT_EQ(service_.counts().at("already_active"), 1u);
}

// An answer lost on the way (or one the camera could not use) must not lock the camera out:
// until the secret has been used on a manager link, the admitted camera gets a fresh one, and
// the unused one stops being valid.
TEST_F(ActivationTest, ReissuesASecretThatWasNeverUsed) {
  json req{{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}};
  ActivationAnswer first = Post(req);
  ASSERT_EQ(first.status, 200);
  ActivationAnswer second = Post(req);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.result, "reissued");
  const std::string issued = json::parse(second.body)["agent_secret"];
  EXPECT_NE(issued, json::parse(first.body)["agent_secret"]);
  EXPECT_EQ(proto::HexEncode((*store_.FindAgent("sn-1"))->secret), issued);
}

TEST_F(ActivationTest, ReactivatesWithProofButNeverReturnsTheSecret) {
  json req{{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}};
  ASSERT_EQ(Post(req).status, 200);
  const proto::AgentSecret secret = (*store_.FindAgent("sn-1"))->secret;
  req["agent_proof"] = proto::HexEncode(proto::ReactivationProof(secret, "sn-1"));
  ActivationAnswer a = Post(req);
  ASSERT_EQ(a.status, 200) << a.body;
  json j = json::parse(a.body);
  EXPECT_EQ(j["manager_url"], "https://mgr:7443");
  EXPECT_FALSE(j.contains("agent_secret"));
  req["agent_proof"] = std::string(64, '0');
  EXPECT_EQ(Post(req).result, "bad_agent_proof");
}

// A database that lost the agent (a failover that dropped its last asynchronously replicated
// commits, an older backup restored): the camera, refused on its manager link, asks with the
// proof of the secret it holds and gets a fresh one.
TEST_F(ActivationTest, ASerialTheStoreLostGetsAFreshSecretForTheProofOfItsOldOne) {
  proto::AgentSecret held;
  held.fill(7);
  ActivationAnswer a =
      Post({{"serial", "sn-1"},
            {"factory_secret", Factory("sn-1")},
            {"operator", "acme"},
            {"agent_proof", proto::HexEncode(proto::ReactivationProof(held, "sn-1"))}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.result, "activated");
  const proto::AgentSecret issued = (*store_.FindAgent("sn-1"))->secret;
  EXPECT_NE(issued, held);
  EXPECT_EQ(json::parse(a.body)["agent_secret"], proto::HexEncode(issued));
}

// A camera away while it was deactivated still holds its secret; it asks back in with the
// proof of it and stays out. Reset to its factory state (no secret), it activates anew.
TEST_F(ActivationTest, ADeactivatedSerialStaysOutForTheProofOfTheSecretItWasDeactivatedWith) {
  json req{{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}};
  ASSERT_EQ(Post(req).status, 200);
  const proto::AgentSecret old = (*store_.FindAgent("sn-1"))->secret;
  ASSERT_TRUE(store_.SetState("sn-1", AgentState::kDeactivated).ok());
  json back = req;
  back["agent_proof"] = proto::HexEncode(proto::ReactivationProof(old, "sn-1"));
  ActivationAnswer refused = Post(back);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(refused.result, "deactivated");
  EXPECT_EQ(refused.body.find("agent_secret"), std::string::npos);
  EXPECT_EQ((*store_.FindAgent("sn-1"))->state, AgentState::kDeactivated);
  EXPECT_EQ(service_.counts().at("deactivated"), 1u);

  ActivationAnswer reset = Post(req);
  ASSERT_EQ(reset.status, 200) << reset.body;
  EXPECT_EQ(reset.result, "activated");
  EXPECT_EQ((*store_.FindAgent("sn-1"))->state, AgentState::kActive);
  EXPECT_NE((*store_.FindAgent("sn-1"))->secret, old);
}

TEST_F(ActivationTest, RejectsUnknownOperator) {
  ActivationAnswer a =
      Post({{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "evil"}});
  EXPECT_EQ(a.status, 403);
}

TEST_F(ActivationTest, RejectsMalformedBodies) {
  EXPECT_EQ(HandleNow(store_, service_, "not json", "s", 1).status, 400);
  EXPECT_EQ(HandleNow(store_, service_, "[1,2]", "s", 2).status, 400);
  EXPECT_EQ(HandleNow(store_, service_, std::string(5000, ' '), "s", 3).status, 400);
  EXPECT_EQ(
      Post({{"serial", "SN-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}}).status,
      400);
  EXPECT_EQ(Post({{"serial", "sn-1"}, {"factory_secret", "zz"}, {"operator", "acme"}}).status, 400);
  EXPECT_EQ(Post({{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}}).status, 400);
  EXPECT_EQ(service_.counts().at("bad_request"), 6u);
}

TEST_F(ActivationTest, RateLimitsPerSource) {
  ActivationService strict(store_.store(), enroller_,
                           ActivationOptions{.factory_master = std::vector<uint8_t>(32, 9),
                                             .operators = {"acme"},
                                             .manager_url = "https://m",
                                             .rate_burst = 2,
                                             .rate_refill_ms = 10000});
  EXPECT_EQ(HandleNow(store_, strict, "{}", "10.0.0.9", 1).status, 400);
  EXPECT_EQ(HandleNow(store_, strict, "{}", "10.0.0.9", 2).status, 400);
  ActivationAnswer limited = HandleNow(store_, strict, "{}", "10.0.0.9", 3);
  EXPECT_EQ(limited.status, 429);
  EXPECT_GT(limited.retry_after_ms, 0);
  EXPECT_EQ(HandleNow(store_, strict, "{}", "10.0.0.8", 4).status,
            400);  // another source is not limited
  EXPECT_EQ(HandleNow(store_, strict, "{}", "10.0.0.9", 20000).status, 400);  // refilled
}

TEST_F(ActivationTest, AuditsAttempts) {
  Post({{"serial", "sn-2"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}});
  auto audit = store_.RecentAudit(5);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].action, "bad_factory_secret");
  EXPECT_EQ((*audit)[0].subject, "sn-2");
  EXPECT_EQ((*audit)[0].detail, "10.0.0.1");
}

TEST_F(ActivationTest, ClaimTokenBindsTheCameraToTheClaimingOperator) {
  ASSERT_TRUE(store_.PutClaim(MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1)).ok());
  ActivationAnswer a = Post(
      {{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "LABEL-7Q2X-99KD"}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ((*store_.FindAgent("sn-1"))->operator_id, "globex");
}

TEST_F(ActivationTest, WrongClaimTokenIsRefusedCountedAndAudited) {
  ASSERT_TRUE(store_.PutClaim(MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1)).ok());
  ActivationAnswer a = Post(
      {{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "LABEL-7Q2X-99KE"}});
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(a.result, "bad_claim_token");
  EXPECT_EQ(service_.counts().at("bad_claim_token"), 1u);
  EXPECT_FALSE(store_.FindAgent("sn-1")->has_value());
  auto audit = store_.RecentAudit(1);
  ASSERT_TRUE(audit.ok() && audit->size() == 1);
  EXPECT_EQ((*audit)[0].action, "bad_claim_token");
  EXPECT_EQ((*audit)[0].subject, "sn-1");
  EXPECT_EQ((*audit)[0].detail.find("LABEL"), std::string::npos);  // never the token
}

TEST_F(ActivationTest, ClaimedSerialRefusesAStaticOperatorId) {
  // Once claimed, only the label's token binds it: a firmware operator id of another operator
  // (or of any) cannot take the camera.
  ASSERT_TRUE(store_.PutClaim(MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1)).ok());
  ActivationAnswer a =
      Post({{"serial", "sn-1"}, {"factory_secret", Factory("sn-1")}, {"operator", "acme"}});
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(a.result, "bad_claim_token");
}

TEST_F(ActivationTest, ClaimTokenDoesNotBindAnotherSerial) {
  ASSERT_TRUE(store_.PutClaim(MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1)).ok());
  ActivationAnswer a = Post(
      {{"serial", "sn-2"}, {"factory_secret", Factory("sn-2")}, {"operator", "LABEL-7Q2X-99KD"}});
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(a.result, "unknown_operator");
}

TEST(Claims, StoresOnlyASaltedHash) {
  ClaimRecord a = MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1);
  ClaimRecord b = MakeClaim("sn-1", "globex", "LABEL-7Q2X-99KD", 1);
  EXPECT_NE(a.token_hash, b.token_hash);  // fresh salt each time
  EXPECT_TRUE(ClaimTokenMatches(a, "LABEL-7Q2X-99KD"));
  EXPECT_FALSE(ClaimTokenMatches(a, "LABEL-7Q2X-99K"));
  EXPECT_TRUE(IsValidClaimToken("abcd1234"));
  EXPECT_FALSE(IsValidClaimToken("abc1234"));
  EXPECT_FALSE(IsValidClaimToken("abcd 1234"));
  EXPECT_FALSE(IsValidClaimToken(std::string(129, 'a')));
}

}  // namespace
}  // namespace camtunnel::manager
