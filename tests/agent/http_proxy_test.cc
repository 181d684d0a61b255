// --proxy parsing and the CONNECT request (the exchange itself is tested against tinyproxy in
// tests/e2e/lifecycle/test_agent_network.py).
#include "agent/http_proxy.h"

#include <gtest/gtest.h>

#include <string>

namespace camtunnel::agent {
namespace {

TEST(HttpProxyTest, ParsesHostAndPortWithoutCredentials) {
  ProxyConfig p;
  std::string error;
  ASSERT_TRUE(ParseProxyUrl("http://proxy.example:3128", &p, &error)) << error;
  EXPECT_EQ(p.host, "proxy.example");
  EXPECT_EQ(p.port, 3128);
  EXPECT_TRUE(p.authorization.empty());
  EXPECT_EQ(p.text, "http://proxy.example:3128");
  ASSERT_TRUE(ParseProxyUrl("http://[::1]:8080/", &p, &error)) << error;
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.text, "http://[::1]:8080");
}

TEST(HttpProxyTest, CredentialsBecomeBasicAuthAndStayOutOfTheLogText) {
  ProxyConfig p;
  std::string error;
  // RFC 7617's example: Aladdin / open sesame.
  ASSERT_TRUE(ParseProxyUrl("http://Aladdin:open%20sesame@10.0.0.1:3128", &p, &error)) << error;
  EXPECT_EQ(p.authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_EQ(p.text, "http://10.0.0.1:3128");
  // A password may hold '@' and ':' (the last '@' ends the user info).
  ASSERT_TRUE(ParseProxyUrl("http://u:p@ss:w@10.0.0.1:3128", &p, &error)) << error;
  EXPECT_EQ(p.authorization, "Basic dTpwQHNzOnc=");  // base64("u:p@ss:w")
}

TEST(HttpProxyTest, RefusesWhatIsNotAnHttpProxyUrl) {
  ProxyConfig p;
  std::string error;
  for (const char* bad :
       {"proxy:3128", "https://proxy:3128", "http://proxy", "http://proxy:0",
        "http://proxy:3128/path", "http://:pass@proxy:3128", "http://u:%zz@proxy:3128",
        "http://u:a%0d%0ab@proxy:3128", "http://[::1:3128"}) {
    EXPECT_FALSE(ParseProxyUrl(bad, &p, &error)) << bad;
    EXPECT_NE(error.find("--proxy must be"), std::string::npos) << bad;
  }
}

TEST(HttpProxyTest, ConnectRequestNamesTheServerAndCarriesCredentialsWhenGiven) {
  ProxyConfig p;
  std::string error;
  ASSERT_TRUE(ParseProxyUrl("http://127.0.0.1:3128", &p, &error));
  EXPECT_EQ(BuildConnectRequest(p, "gw.example", 443),
            "CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example:443\r\n\r\n");
  EXPECT_EQ(BuildConnectRequest(p, "::1", 8443),
            "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
  ASSERT_TRUE(ParseProxyUrl("http://Aladdin:open%20sesame@127.0.0.1:3128", &p, &error));
  EXPECT_EQ(BuildConnectRequest(p, "gw.example", 443),
            "CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example:443\r\n"
            "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
}

}  // namespace
}  // namespace camtunnel::agent
