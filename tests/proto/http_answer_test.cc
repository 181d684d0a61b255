// The answer formatter, the JSON error body and the bearer-token check.
#include "proto/http_answer.h"

#include <gtest/gtest.h>

#include <string>

#include "proto/http_bearer.h"

namespace camtunnel::proto {
namespace {

TEST(HttpAnswerTest, FormatsStatusPhraseLengthAndClose) {
  EXPECT_EQ(FormatHttpAnswer(404, "application/json", "{}\n"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 3\r\n"
            "Connection: close\r\n\r\n{}\n");
}

TEST(HttpAnswerTest, UnlistedCodeGetsItsClassPhrase) {
  EXPECT_EQ(FormatHttpAnswer(599, "", "").rfind("HTTP/1.1 599 Server Error\r\n", 0), 0u);
}

TEST(HttpAnswerTest, KeepAliveAndExtraFields) {
  const HeaderField extra[] = {{"Retry-After", "5"}, {"Allow", "GET, POST"}};
  EXPECT_EQ(FormatHttpAnswer(503, "text/plain", "x", /*keep_alive=*/true, extra),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n"
            "Connection: keep-alive\r\nRetry-After: 5\r\nAllow: GET, POST\r\n\r\nx");
}

TEST(HttpAnswerTest, HeadWithoutLengthForAStreamedBody) {
  EXPECT_EQ(FormatHttpAnswerHead({.status = 200, .content_type = "text/event-stream"}),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
}

TEST(HttpAnswerTest, JsonErrorBodyEscapesTheMessage) {
  EXPECT_EQ(JsonErrorBody("not found"), "{\"error\":\"not found\"}\n");
  EXPECT_EQ(JsonErrorBody("a \"b\" \\ c\n\x01\x7f\xc3\xa9"),
            "{\"error\":\"a \\\"b\\\" \\\\ c\\n\\u0001\\u007f\xc3\xa9\"}\n");
}

HeaderList Headers(std::initializer_list<HeaderField> fields) {
  HeaderList list;
  for (const HeaderField& f : fields) {
    list.fields[list.count++] = f;
  }
  return list;
}

TEST(HttpBearerTest, MatchesOnlyTheExactToken) {
  constexpr std::string_view kToken = "s3cret-token-0123456789";
  EXPECT_TRUE(
      BearerTokenMatches(Headers({{"Authorization", "Bearer s3cret-token-0123456789"}}), kToken));
  EXPECT_TRUE(
      BearerTokenMatches(Headers({{"authorization", "Bearer s3cret-token-0123456789"}}), kToken));
  EXPECT_FALSE(
      BearerTokenMatches(Headers({{"Authorization", "Bearer s3cret-token-012345678"}}), kToken));
  EXPECT_FALSE(
      BearerTokenMatches(Headers({{"Authorization", "Bearer s3cret-token-01234567890"}}), kToken));
  EXPECT_FALSE(
      BearerTokenMatches(Headers({{"Authorization", "Basic s3cret-token-0123456789"}}), kToken));
  EXPECT_FALSE(BearerTokenMatches(Headers({{"Authorization", "Bearer "}}), kToken));
  EXPECT_FALSE(BearerTokenMatches(Headers({}), kToken));
}

TEST(HttpBearerTest, RefusesTwoAuthorizationFields) {
  EXPECT_FALSE(BearerTokenMatches(
      Headers({{"Authorization", "Bearer tok"}, {"Authorization", "Bearer tok"}}), "tok"));
}

TEST(HttpBearerTest, AnEmptyTokenNeverMatches) {
  EXPECT_FALSE(BearerTokenMatches(Headers({{"Authorization", "Bearer "}}), ""));
}

}  // namespace
}  // namespace camtunnel::proto
