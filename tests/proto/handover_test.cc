// The activation hand-over (PROTOCOL.md section 10.4) against the "handover" vectors of
// proto/manager_test_vectors.json (computed by tests/proto/manager_vectors.py, Python hmac and
// cryptography), and what a sealed secret must not open for.
#include "proto/handover.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proto/encoding.h"
#include "tests/proto/manager_vectors.h"

namespace camtunnel::proto {
namespace {

using nlohmann::json;
using Buf = std::vector<uint8_t>;

json Vector() {
  const json& section = test_util::ManagerVectorSection("handover");
  return section.empty() ? json::object() : section[0];
}

Buf Hex(const json& v) { return HexDecode(v.get<std::string>()).value_or(Buf{}); }

TEST(Handover, MatchesTheVectors) {
  const json v = Vector();
  ASSERT_TRUE(v.contains("sealed_secret"));
  const HandoverKeys keys = DeriveHandoverKeys(Hex(v["handover_key"]));
  EXPECT_EQ(HexEncode(keys.mac_key), v["mac_key"]);
  EXPECT_EQ(HexEncode(keys.seal_key), v["seal_key"]);
  EXPECT_EQ(HexEncode(HandoverRequestMac(keys, v["body"].get<std::string>())), v["mac"]);
  AgentSecret secret;
  const Buf s = Hex(v["secret"]);
  ASSERT_EQ(s.size(), secret.size());
  std::copy(s.begin(), s.end(), secret.begin());
  const std::string serial = v["serial"];
  const Buf nonce = Hex(v["request_nonce"]);
  EXPECT_EQ(HexEncode(SealHandoverSecret(keys, serial, nonce, secret, Hex(v["seal_nonce"]))),
            v["sealed_secret"]);
  auto opened = OpenHandoverSecret(keys, serial, nonce, Hex(v["sealed_secret"]));
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, secret);
}

// A recorded answer opens only for its own serial and request, under the right key.
TEST(Handover, ASealedSecretOpensForItsSerialAndRequestOnly) {
  const json v = Vector();
  ASSERT_TRUE(v.contains("sealed_secret"));
  const HandoverKeys keys = DeriveHandoverKeys(Hex(v["handover_key"]));
  const Buf nonce = Hex(v["request_nonce"]);
  const Buf sealed = Hex(v["sealed_secret"]);
  Buf other_nonce = nonce;
  other_nonce[0] ^= 1;
  EXPECT_FALSE(OpenHandoverSecret(keys, "sn-000124", nonce, sealed));
  EXPECT_FALSE(OpenHandoverSecret(keys, v["serial"].get<std::string>(), other_nonce, sealed));
  const HandoverKeys wrong = DeriveHandoverKeys(Buf(32, 1));
  EXPECT_FALSE(OpenHandoverSecret(wrong, v["serial"].get<std::string>(), nonce, sealed));
  for (size_t i : {size_t{0}, size_t{20}, sealed.size() - 1}) {
    Buf flipped = sealed;
    flipped[i] ^= 0x80;
    EXPECT_FALSE(OpenHandoverSecret(keys, v["serial"].get<std::string>(), nonce, flipped)) << i;
  }
  EXPECT_FALSE(OpenHandoverSecret(keys, v["serial"].get<std::string>(), nonce,
                                  Buf(sealed.begin(), sealed.end() - 1)));
}

}  // namespace
}  // namespace camtunnel::proto
