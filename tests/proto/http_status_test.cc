// The status table: every code camtunnel answers has its RFC 9110 phrase, and an unlisted code
// gets its class's name, never another code's phrase.
#include "proto/http_status.h"

#include <gtest/gtest.h>

namespace camtunnel::proto {
namespace {

TEST(HttpStatusTest, NamesEveryCodeTheServersAnswer) {
  EXPECT_EQ(HttpReasonPhrase(101), "Switching Protocols");
  EXPECT_EQ(HttpReasonPhrase(200), "OK");
  EXPECT_EQ(HttpReasonPhrase(202), "Accepted");
  EXPECT_EQ(HttpReasonPhrase(400), "Bad Request");
  EXPECT_EQ(HttpReasonPhrase(401), "Unauthorized");
  EXPECT_EQ(HttpReasonPhrase(403), "Forbidden");
  EXPECT_EQ(HttpReasonPhrase(404), "Not Found");
  EXPECT_EQ(HttpReasonPhrase(405), "Method Not Allowed");
  EXPECT_EQ(HttpReasonPhrase(407), "Proxy Authentication Required");  // CONNECT without a token
  EXPECT_EQ(HttpReasonPhrase(408), "Request Timeout");
  EXPECT_EQ(HttpReasonPhrase(409), "Conflict");
  EXPECT_EQ(HttpReasonPhrase(411), "Length Required");
  EXPECT_EQ(HttpReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(HttpReasonPhrase(429), "Too Many Requests");
  EXPECT_EQ(HttpReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(HttpReasonPhrase(500), "Internal Server Error");
  EXPECT_EQ(HttpReasonPhrase(502), "Bad Gateway");
  EXPECT_EQ(HttpReasonPhrase(503), "Service Unavailable");
  EXPECT_EQ(HttpReasonPhrase(504), "Gateway Timeout");
}

TEST(HttpStatusTest, UnlistedCodesGetTheirClassName) {
  EXPECT_EQ(HttpReasonPhrase(199), "Informational");
  EXPECT_EQ(HttpReasonPhrase(299), "Success");
  EXPECT_EQ(HttpReasonPhrase(399), "Redirection");
  EXPECT_EQ(HttpReasonPhrase(499), "Client Error");
  EXPECT_EQ(HttpReasonPhrase(599), "Server Error");
  EXPECT_EQ(HttpReasonPhrase(600), "Unknown");
  EXPECT_EQ(HttpReasonPhrase(99), "Unknown");
  EXPECT_EQ(HttpReasonPhrase(-404), "Unknown");
}

}  // namespace
}  // namespace camtunnel::proto
