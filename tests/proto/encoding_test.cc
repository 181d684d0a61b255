// Unpadded base64url and hex: RFC 4648 vectors, and the non-canonical spellings the decoders
// must refuse.
#include "proto/encoding.h"

#include <gtest/gtest.h>

#include <vector>

namespace camtunnel::proto {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Base64UrlTest, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(AsBytes("")), "");
  EXPECT_EQ(Base64UrlEncode(AsBytes("f")), "Zg");
  EXPECT_EQ(Base64UrlEncode(AsBytes("fo")), "Zm8");
  EXPECT_EQ(Base64UrlEncode(AsBytes("foo")), "Zm9v");
  EXPECT_EQ(Base64UrlEncode(AsBytes("foob")), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode(AsBytes("fooba")), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode(AsBytes("foobar")), "Zm9vYmFy");
}

TEST(Base64UrlTest, UsesUrlAlphabet) {
  const std::vector<uint8_t> bytes = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(Base64UrlEncode(bytes), "-_-_");
}

TEST(Base64UrlTest, DecodesRfc4648Vectors) {
  EXPECT_EQ(Base64UrlDecode(""), Bytes(""));
  EXPECT_EQ(Base64UrlDecode("Zg"), Bytes("f"));
  EXPECT_EQ(Base64UrlDecode("Zm8"), Bytes("fo"));
  EXPECT_EQ(Base64UrlDecode("Zm9vYmFy"), Bytes("foobar"));
  EXPECT_EQ(Base64UrlDecode("-_-_"), (std::vector<uint8_t>{0xfb, 0xff, 0xbf}));
}

TEST(Base64UrlTest, SixteenBytesAreTwentyTwoCharacters) {
  std::vector<uint8_t> nonce(16, 0xa5);
  std::string text = Base64UrlEncode(nonce);
  EXPECT_EQ(text.size(), 22u);
  EXPECT_EQ(Base64UrlDecode(text), nonce);
}

TEST(Base64UrlTest, RejectsPadding) {
  EXPECT_FALSE(Base64UrlDecode("Zg=="));
  EXPECT_FALSE(Base64UrlDecode("Zm8="));
}

TEST(Base64UrlTest, RejectsStandardAlphabet) { EXPECT_FALSE(Base64UrlDecode("+/+/")); }

TEST(Base64UrlTest, RejectsNonCanonicalTrailingBits) {
  EXPECT_FALSE(Base64UrlDecode("Zh"));   // "f" is Zg; the low 4 bits of 'h' are not zero
  EXPECT_FALSE(Base64UrlDecode("Zm9"));  // "fo" is Zm8
}

TEST(Base64UrlTest, RejectsImpossibleLength) { EXPECT_FALSE(Base64UrlDecode("Zm9vY")); }

TEST(Base64UrlTest, RejectsWhitespaceAndControls) {
  EXPECT_FALSE(Base64UrlDecode("Zm9v Zg"));
  EXPECT_FALSE(Base64UrlDecode("Zm9v\n"));
  EXPECT_FALSE(Base64UrlDecode(std::string_view("Zm\0v", 4)));
}

TEST(Base64UrlTest, RoundTripsEveryLength) {
  std::vector<uint8_t> bytes;
  for (int n = 0; n < 70; ++n) {
    EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(bytes)), bytes) << n;
    bytes.push_back(static_cast<uint8_t>(n * 37 + 11));
  }
}

TEST(HexTest, EncodesLowercase) {
  const std::vector<uint8_t> bytes = {0x00, 0xab, 0xff, 0x10};
  EXPECT_EQ(HexEncode(bytes), "00abff10");
  EXPECT_EQ(HexEncode({}), "");
}

TEST(HexTest, DecodesBothCases) {
  EXPECT_EQ(HexDecode("00abFF10"), (std::vector<uint8_t>{0x00, 0xab, 0xff, 0x10}));
  EXPECT_EQ(HexDecode(""), std::vector<uint8_t>{});
}

TEST(HexTest, RejectsOddLength) { EXPECT_FALSE(HexDecode("abc")); }

TEST(HexTest, RejectsNonHexCharacters) {
  EXPECT_FALSE(HexDecode("0g"));
  EXPECT_FALSE(HexDecode(" 0"));
  EXPECT_FALSE(HexDecode("0x00"));
}

}  // namespace
}  // namespace camtunnel::proto
