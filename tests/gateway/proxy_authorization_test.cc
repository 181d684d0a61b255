// Proxy-Authorization carries the frontend's bearer token: RequestFilter removes it from every
// head it forwards (first and later heads, host and path form, a head split anywhere), and
// changes nothing else.
#include <gtest/gtest.h>

#include <string>

#include "gateway/request_filter.h"

namespace camtunnel::gateway {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

FrontendRoute RouteOf(const std::string& first) {
  proto::RequestHead head;
  EXPECT_EQ(proto::ParseRequestHead(first, &head), proto::HeadResult::kComplete);
  return RouteFirstRequest(head, FrontendRouteConfig{"localhost"}).route;
}

std::string Forward(const std::string& input, size_t split) {
  RequestFilter stream(RouteOf(input), FrontendRouteConfig{"localhost"}, "127.0.0.1:80");
  std::string out;
  EXPECT_EQ(stream.Feed(Bytes(std::string_view(input).substr(0, split)), &out), FrontendError::kOk);
  EXPECT_EQ(stream.Feed(Bytes(std::string_view(input).substr(split)), &out), FrontendError::kOk);
  return out;
}

TEST(ProxyAuthorizationTest, RemovedFromEveryHeadWhateverTheSplit) {
  const std::string input =
      "GET /a HTTP/1.1\r\nHost: cam-1.localhost\r\nProxy-Authorization: Bearer SECRET-1\r\n"
      "Authorization: Basic abc\r\n\r\n"
      "GET /b HTTP/1.1\r\nproxy-authorization:Bearer SECRET-2\r\nHost: cam-1.localhost\r\n\r\n";
  const std::string want =
      "GET /a HTTP/1.1\r\nHost: cam-1.localhost\r\nAuthorization: Basic abc\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n";
  for (size_t split = 0; split <= input.size(); ++split) {
    ASSERT_EQ(Forward(input, split), want) << "split at " << split;
  }
}

TEST(ProxyAuthorizationTest, RemovedAlongsideAPathFormRewrite) {
  const std::string input =
      "GET /cam-1/snap.jpg HTTP/1.1\r\nHost: gw:8554\r\nProxy-Authorization: Bearer S\r\n"
      "X-Last: 1\r\n\r\n";
  for (size_t split : {size_t{0}, size_t{20}, size_t{60}, input.size()}) {
    EXPECT_EQ(Forward(input, split),
              "GET /snap.jpg HTTP/1.1\r\nHost: gw:8554\r\nX-Last: 1\r\n\r\n");
  }
}

TEST(ProxyAuthorizationTest, HeadsWithoutItPassByteExact) {
  const std::string input = "GET /x HTTP/1.1\r\nHost: cam-1.localhost\r\nX-Proxy: 1\r\n\r\n";
  EXPECT_EQ(Forward(input, 7), input);
}

}  // namespace
}  // namespace camtunnel::gateway
