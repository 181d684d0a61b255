// The server URL grammar (proto/url.h): scheme, host as IsValidServiceHost defines it, canonical
// port, an optional trailing '/', and nothing else.
#include "proto/url.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::proto {
namespace {

TEST(UrlTest, ParsesSchemeHostAndPort) {
  EXPECT_EQ(ParseUrl("https://gw.example.com:8443"),
            (Url{.scheme = "https", .host = "gw.example.com", .port = 8443}));
  EXPECT_EQ(ParseUrl("http://10.0.0.1:80/"),
            (Url{.scheme = "http", .host = "10.0.0.1", .port = 80}));
  EXPECT_EQ(ParseUrl("rtsp://[::1]:8554"), (Url{.scheme = "rtsp", .host = "[::1]", .port = 8554}));
}

TEST(UrlTest, PortIsZeroWhenAbsent) {
  EXPECT_EQ(ParseUrl("https://gw"), (Url{.scheme = "https", .host = "gw", .port = 0}));
  EXPECT_EQ(ParseUrl("http://[2001:db8::1]/"),
            (Url{.scheme = "http", .host = "[2001:db8::1]", .port = 0}));
}

TEST(UrlTest, UnbracketedHostStripsIpv6Brackets) {
  EXPECT_EQ(UnbracketedHost(*ParseUrl("https://[::1]:443")), "::1");
  EXPECT_EQ(UnbracketedHost(*ParseUrl("https://gw:443")), "gw");
}

TEST(UrlTest, RefusesAnythingButAServer) {
  for (const char* bad : {"",
                          "gw:443",
                          "https://",
                          "https:///",
                          "ftp://gw:21",
                          "HTTPS://gw",
                          "https://gw:",
                          "https://gw:0",
                          "https://gw:65536",
                          "https://gw:0443",
                          "https://gw:+443",
                          "https://gw:44a",
                          "https://gw/path",
                          "https://gw//",
                          "https://gw?q",
                          "https://gw#f",
                          "https://user@gw",
                          "https://user:pw@gw:443",
                          "https://gw:443:1",
                          "https://[::1",
                          "https://[::1]x",
                          "https://[::1]:",
                          "https://[not-v6]:443",
                          "https://gw 2",
                          "https://gw\r\nX: y",
                          "https://a..b"}) {
    EXPECT_EQ(ParseUrl(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseUrl("https://" + std::string(64, 'a')), std::nullopt);  // a label over 63
}

}  // namespace
}  // namespace camtunnel::proto
