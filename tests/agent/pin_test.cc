// SPKI pins: parsing, formatting, hashing a certificate's key, and matching against a set.
#include "agent/pin.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include "tests/agent/tls_test_util.h"

namespace camtunnel::agent {
namespace {

// SHA-256 of the empty string, the classic test vector, in pin form.
constexpr char kEmptyPin[] = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

TEST(PinTest, ParsesKnownVector) {
  auto pin = ParsePin(kEmptyPin);
  ASSERT_TRUE(pin.has_value());
  ASSERT_EQ(pin->size(), 32u);
  EXPECT_EQ((*pin)[0], 0xe3);
  EXPECT_EQ((*pin)[1], 0xb0);
  EXPECT_EQ((*pin)[31], 0x55);
  EXPECT_EQ(FormatPin(*pin), kEmptyPin);
  // The unpadded spelling is accepted too.
  auto unpadded = ParsePin("sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
  ASSERT_TRUE(unpadded.has_value());
  EXPECT_EQ(*unpadded, *pin);
}

TEST(PinTest, RejectsMalformedPins) {
  for (const char* bad : {"", "sha256/", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                          "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",  // trailing bits
                          "sha256/47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  // base64url
                          "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU==",
                          "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu=",
                          "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS FU=",
                          "SHA256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}) {
    EXPECT_FALSE(ParsePin(bad).has_value()) << bad;
  }
}

TEST(PinTest, HashesTheCertificatesSubjectPublicKeyInfo) {
  test_util::TestCert cert;
  test_util::MakeSelfSigned("gateway.test", &cert);
  // Independent path: DER of the key itself (i2d_PUBKEY), not the certificate's copy.
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(cert.key, &der);
  ASSERT_GT(len, 0);
  std::vector<uint8_t> expected(32);
  SHA256(der, static_cast<size_t>(len), expected.data());
  OPENSSL_free(der);
  EXPECT_EQ(SpkiSha256(cert.cert), expected);
}

TEST(PinTest, MatchesAnyPinOfTheSet) {
  std::vector<uint8_t> current(32, 0x11);
  std::vector<uint8_t> next(32, 0x22);
  std::vector<uint8_t> other(32, 0x33);
  PinSet pins{current, next};
  EXPECT_TRUE(MatchesPin(current, pins));
  EXPECT_TRUE(MatchesPin(next, pins));
  EXPECT_FALSE(MatchesPin(other, pins));
  EXPECT_FALSE(MatchesPin(std::vector<uint8_t>(31, 0x11), pins));
  EXPECT_FALSE(MatchesPin(current, PinSet{}));
}

}  // namespace
}  // namespace camtunnel::agent
