// The query-string parser: splitting, percent-decoding, and each strictness rule and bound.
#include "proto/http_query.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::proto {
namespace {

TEST(HttpQueryTest, SplitsPairsInOrder) {
  auto q = QueryParams::Parse("limit=5&cursor=cam-1&flag&limit=7");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->pairs().size(), 4u);
  EXPECT_EQ(q->Get("limit"), "5");  // the first of duplicates
  EXPECT_EQ(q->Get("cursor"), "cam-1");
  EXPECT_EQ(q->Get("flag"), "");
  EXPECT_FALSE(q->Get("missing"));
  EXPECT_EQ(q->pairs()[3], std::make_pair(std::string("limit"), std::string("7")));
}

TEST(HttpQueryTest, EmptyQueryHasNoPairs) {
  auto q = QueryParams::Parse("");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->empty());
}

TEST(HttpQueryTest, DecodesPercentEscapesInKeysAndValues) {
  auto q = QueryParams::Parse("path=%2Fstream%201&a%62c=x%3Dy&url=https://gw:8443/x?y");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->Get("path"), "/stream 1");
  EXPECT_EQ(q->Get("abc"), "x=y");
  EXPECT_EQ(q->Get("url"), "https://gw:8443/x?y");  // ':', '/', '?' need no escape
}

TEST(HttpQueryTest, PlusIsALiteralPlus) {
  auto q = QueryParams::Parse("v=a+b");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->Get("v"), "a+b");
}

TEST(HttpQueryTest, RefusesBrokenEscapes) {
  std::string error;
  for (const char* bad : {"a=%", "a=%4", "a=%zz", "a=%g1", "a%=1"}) {
    EXPECT_FALSE(QueryParams::Parse(bad, &error)) << bad;
    EXPECT_EQ(error, "bad character or escape in the query string") << bad;
  }
}

TEST(HttpQueryTest, RefusesDecodedControlCharacters) {
  for (const char* bad : {"a=%00", "a=%0a", "a=%1F", "a=%7f", "%00=1"}) {
    EXPECT_FALSE(QueryParams::Parse(bad)) << bad;
  }
  EXPECT_TRUE(QueryParams::Parse("a=%20%7e%C3%A9"));
}

TEST(HttpQueryTest, RefusesRawCharactersOutsideTheQueryAlphabet) {
  for (const char* bad : {"a=b c", "a=<", "a=\"", "a=#", "a=\x80", "a=[1]", "a=\\"}) {
    EXPECT_FALSE(QueryParams::Parse(bad)) << bad;
  }
}

TEST(HttpQueryTest, RefusesEmptyPairsAndKeys) {
  std::string error;
  EXPECT_FALSE(QueryParams::Parse("a=1&&b=2", &error));
  EXPECT_EQ(error, "empty query parameter");
  EXPECT_FALSE(QueryParams::Parse("a=1&", &error));
  EXPECT_FALSE(QueryParams::Parse("&a=1", &error));
  EXPECT_FALSE(QueryParams::Parse("&", &error));
  EXPECT_FALSE(QueryParams::Parse("=1", &error));
  EXPECT_EQ(error, "empty query parameter name");
}

TEST(HttpQueryTest, RefusesAnUnescapedEqualsInAValue) {
  EXPECT_FALSE(QueryParams::Parse("a=b=c"));
  EXPECT_TRUE(QueryParams::Parse("a=b%3Dc"));
}

TEST(HttpQueryTest, BoundsLengthAndPairCount) {
  std::string error;
  const std::string longest = "a=" + std::string(kMaxQueryBytes - 2, 'x');
  EXPECT_TRUE(QueryParams::Parse(longest));
  EXPECT_FALSE(QueryParams::Parse(longest + "x", &error));
  EXPECT_EQ(error, "query string too long");

  std::string many = "k=v";
  for (size_t i = 1; i < kMaxQueryParams; ++i) {
    many += "&k=v";
  }
  EXPECT_TRUE(QueryParams::Parse(many));
  EXPECT_FALSE(QueryParams::Parse(many + "&k=v", &error));
  EXPECT_EQ(error, "too many query parameters");
}

TEST(HttpQueryTest, PercentDecodeAlone) {
  EXPECT_EQ(PercentDecode("a%2Fb"), "a/b");
  EXPECT_EQ(PercentDecode(""), "");
  EXPECT_FALSE(PercentDecode("a&b"));  // a delimiter is not part of a component
  EXPECT_FALSE(PercentDecode("a=b"));
}

}  // namespace
}  // namespace camtunnel::proto
