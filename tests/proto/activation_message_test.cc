// The activation exchange (PROTOCOL.md section 10.1): the request body the agent sends and the
// strict reader of the answer.
#include "proto/activation_message.h"

#include <gtest/gtest.h>

#include "proto/encoding.h"

namespace camtunnel::proto {
namespace {

TEST(ActivationMessage, BuildsTheDocumentedBody) {
  Digest f{};
  f[0] = 0xab;
  EXPECT_EQ(BuildActivationBody("sn-1", f, "acme", nullptr),
            "{\"serial\":\"sn-1\",\"factory_secret\":\"ab" + std::string(62, '0') +
                "\",\"operator\":\"acme\"}");
  Digest p{};
  EXPECT_NE(BuildActivationBody("sn-1", f, "acme", &p)
                .find("\"agent_proof\":\"" + std::string(64, '0') + "\""),
            std::string::npos);
}

TEST(ActivationMessage, ReadsFirstActivation) {
  std::string error;
  auto r = ParseActivationResult(
      " {\"agent_id\": \"sn-1\", \"manager_url\":\"https://mgr:7443\", \"agent_secret\":\"" +
          std::string(64, 'a') + "\", \"note\":\"x\"}\n",
      &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->agent_id, "sn-1");
  EXPECT_EQ(r->manager_url, "https://mgr:7443");
  ASSERT_TRUE(r->agent_secret);
  EXPECT_EQ((*r->agent_secret)[0], 0xaa);
}

TEST(ActivationMessage, ReadsReactivationWithoutSecret) {
  std::string error;
  auto r = ParseActivationResult(R"({"agent_id":"sn-1","manager_url":"https://m"})", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_FALSE(r->agent_secret);
}

// A plain manager link (PROTOCOL.md section 10.2): the manager chose http, inside TLS.
TEST(ActivationMessage, ReadsAPlainManagerUrl) {
  std::string error;
  auto r = ParseActivationResult(R"({"agent_id":"sn-1","manager_url":"http://m:7080"})", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->manager_url, "http://m:7080");
}

// The secret is issued once: an answer whose manager URL the agent cannot use still yields it
// (the agent keeps it and reactivates), with the URL left empty and the reason given.
TEST(ActivationMessage, KeepsTheSecretBesideAnUnusableManagerUrl) {
  const std::string secret = "\"agent_secret\":\"" + std::string(64, 'b') + "\"";
  for (const std::string url_member :
       {R"("manager_url":"ftp://m",)", R"("manager_url":"http://m/path",)", ""}) {
    std::string error;
    auto r = ParseActivationResult("{\"agent_id\":\"sn-1\"," + url_member + secret + "}", &error);
    ASSERT_TRUE(r) << url_member << error;
    EXPECT_TRUE(r->manager_url.empty());
    EXPECT_FALSE(r->manager_url_problem.empty());
    ASSERT_TRUE(r->agent_secret);
    EXPECT_EQ((*r->agent_secret)[31], 0xbb);
  }
}

TEST(ActivationMessage, RejectsAnythingElse) {
  std::string error;
  for (const char* bad : {
           "",
           "[]",
           R"({"agent_id":"SN-1","manager_url":"https://m"})",
           R"({"agent_id":"sn-1","manager_url":"https://m","agent_secret":"zz"})",
           R"({"agent_id":"sn-1","agent_id":"sn-2","manager_url":"https://m"})",
           R"({"agent_id":"sn-\u0031","manager_url":"https://m"})",
           R"({"agent_id":"sn-1","manager_url":"https://m","n":1})",
           R"({"agent_id":"sn-1","manager_url":"https://m"} x)",
           R"({"agent_id":"sn-1" "manager_url":"https://m"})",
       }) {
    EXPECT_FALSE(ParseActivationResult(bad, &error)) << bad;
  }
  EXPECT_FALSE(ParseActivationResult(std::string(5000, ' '), &error));
}

}  // namespace
}  // namespace camtunnel::proto
