#include "agentsim/url_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace camtunnel::agentsim {
namespace {

uint16_t Port(const UrlEndpoint& e) {
  return ntohs(reinterpret_cast<const sockaddr_in&>(e.address).sin_port);
}

TEST(UrlEndpointTest, SchemePicksTransportAndDefaultPort) {
  auto e = ParseUrlEndpoint("https://127.0.0.1:7443");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(Port(*e), 7443);
  EXPECT_EQ(e->host, "127.0.0.1:7443");
  EXPECT_EQ(e->server_name, "");  // an address literal is not a certificate name
  e = ParseUrlEndpoint("http://127.0.0.1/");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->tls);
  EXPECT_EQ(Port(*e), 80);
  EXPECT_EQ(e->host, "127.0.0.1");
  e = ParseUrlEndpoint("https://localhost:8443");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->server_name, "localhost");
  e = ParseUrlEndpoint("https://[::1]:9");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->address.ss_family, AF_INET6);
  EXPECT_EQ(e->server_name, "");
}

TEST(UrlEndpointTest, RefusesWhatIsNotSchemeHostPort) {
  for (const char* bad : {"ftp://127.0.0.1:1", "127.0.0.1:1", "https://", "https://1.2.3.4:1/x",
                          "https://1.2.3.4:0"}) {
    EXPECT_FALSE(ParseUrlEndpoint(bad).ok()) << bad;
  }
}

TEST(UrlEndpointTest, KeepsOneEndpointPerUrl) {
  UrlEndpoints endpoints;
  auto a = endpoints.Find("https://127.0.0.1:1");
  auto b = endpoints.Find("https://127.0.0.1:1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(endpoints.Find("nope").ok());
}

}  // namespace
}  // namespace camtunnel::agentsim
