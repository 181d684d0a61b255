// The frontend's source allowlist: IPv4 and IPv6 prefixes, v4-mapped peers, bad entries.
#include "gateway/source_allowlist.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace camtunnel::gateway {
namespace {

sockaddr_storage Peer(const char* text) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text, &v6->sin6_addr), 1) << text;
    v6->sin6_family = AF_INET6;
  }
  return ss;
}

TEST(SourceAllowlistTest, MatchesPrefixesOfBothFamilies) {
  auto list = SourceAllowlist::Parse({"10.0.0.0/8", "192.0.2.7", "172.16.0.0/12", "2001:db8::/32"});
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->Allows(Peer("10.255.1.2")));
  EXPECT_TRUE(list->Allows(Peer("192.0.2.7")));
  EXPECT_FALSE(list->Allows(Peer("192.0.2.8")));
  EXPECT_TRUE(list->Allows(Peer("172.31.255.255")));
  EXPECT_FALSE(list->Allows(Peer("172.32.0.0")));
  EXPECT_TRUE(list->Allows(Peer("2001:db8:1::5")));
  EXPECT_FALSE(list->Allows(Peer("2001:db9::5")));
  EXPECT_TRUE(list->Allows(Peer("::ffff:10.1.2.3")));  // what a dual-stack [::] socket reports
  EXPECT_FALSE(list->Allows(Peer("::ffff:11.1.2.3")));
  EXPECT_FALSE(list->Allows(Peer("127.0.0.1")));
}

TEST(SourceAllowlistTest, EmptyAllowsEveryoneAndZeroPrefixAllowsAFamily) {
  auto empty = SourceAllowlist::Parse({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->Allows(Peer("203.0.113.9")));
  auto v4 = SourceAllowlist::Parse({"0.0.0.0/0"});
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->Allows(Peer("203.0.113.9")));
  EXPECT_FALSE(v4->Allows(Peer("2001:db8::1")));
}

TEST(SourceAllowlistTest, RefusesBadEntries) {
  for (const char* bad :
       {"10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/x", "ten", "10.0.0.0/8/8", ""}) {
    EXPECT_FALSE(SourceAllowlist::Parse({bad}).ok()) << bad;
  }
}

}  // namespace
}  // namespace camtunnel::gateway
