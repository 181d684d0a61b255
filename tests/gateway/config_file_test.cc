// The TOML configuration: every key lands in its field; errors name line and key and change
// nothing; cross-option rules (config_check) and the loopback definition.
#include "gateway/config_file.h"

#include <gtest/gtest.h>

#include <tuple>

#include "gateway/config_check.h"

namespace camtunnel::gateway {
namespace {

TEST(ConfigFileTest, EveryKeyLandsInItsField) {
  GatewayConfig c;
  ASSERT_TRUE(ApplyConfigText(R"(
agent_tls_listen = ["0.0.0.0:443", "[::]:443"]
agent_plain_listen = "0.0.0.0:80,[::]:80"
cert = "/c.pem"
key = "/k.pem"
allow_plain_with_tls = true
kernel_tls = false
streamer_keys = "/s.keys"
frontend_listen = ["10.0.0.5:8554"]
frontend_allow = ["10.0.0.0/8"]
frontend_token_file = "/f.token"
host_suffix = "cam.example.net"
admin_listen = ["10.0.0.5:9310"]
admin_token_file = "/a.token"
handshake_timeout_ms = 1
head_timeout_ms = 2
open_timeout_ms = 3
heartbeat_ms = 400
heartbeat_misses = 5
reconnect_window_ms = 6
drain_timeout_ms = 7
drain_reconnect_ms = 8
max_pending_tunnels_per_agent = 9
max_unauthenticated = 10
max_connections = 11
log_level = "debug"
log_burst = 12
spare_data_connections = 2
spare_data_connections_max = 3
spare_idle_ms = 13000
)",
                              "t.toml", &c)
                  .ok());
  EXPECT_EQ(c.agent_tls_listen, (std::vector<std::string>{"0.0.0.0:443", "[::]:443"}));
  EXPECT_EQ(c.agent_plain_listen, (std::vector<std::string>{"0.0.0.0:80", "[::]:80"}));
  EXPECT_EQ(c.cert_file, "/c.pem");
  EXPECT_EQ(c.key_file, "/k.pem");
  EXPECT_TRUE(c.allow_plain_with_tls);
  EXPECT_FALSE(c.kernel_tls);
  EXPECT_EQ(c.streamer_keys_file, "/s.keys");
  EXPECT_EQ(c.frontend_listen, std::vector<std::string>{"10.0.0.5:8554"});
  EXPECT_EQ(c.frontend_allow, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_EQ(c.frontend_token_file, "/f.token");
  EXPECT_EQ(c.host_suffix, "cam.example.net");
  EXPECT_EQ(c.admin_listen, std::vector<std::string>{"10.0.0.5:9310"});
  EXPECT_EQ(c.admin_token_file, "/a.token");
  EXPECT_EQ(c.handshake_timeout_ms, 1u);
  EXPECT_EQ(c.head_timeout_ms, 2u);
  EXPECT_EQ(c.open_timeout_ms, 3u);
  EXPECT_EQ(c.heartbeat_ms, 400u);
  EXPECT_EQ(c.heartbeat_misses, 5u);
  EXPECT_EQ(c.reconnect_window_ms, 6u);
  EXPECT_EQ(c.drain_timeout_ms, 7u);
  EXPECT_EQ(c.drain_reconnect_ms, 8u);
  EXPECT_EQ(c.max_pending_tunnels_per_agent, 9u);
  EXPECT_EQ(c.max_unauthenticated, 10u);
  EXPECT_EQ(c.max_connections, 11u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_burst, 12u);
  EXPECT_EQ(c.spare_data_connections, 2u);
  EXPECT_EQ(c.spare_data_connections_max, 3u);
  EXPECT_EQ(c.spare_idle_ms, 13000u);
}

TEST(ConfigFileTest, ErrorsNameLineAndKeyAndChangeNothing) {
  GatewayConfig c;
  const absl::Status s =
      ApplyConfigText("open_timeout_ms = 9\nmax_connections = 5000000000\n", "g.toml", &c);
  EXPECT_EQ(s.message(), "g.toml:2:19: max_connections: out of range: 5000000000 (1..4294967295)");
  EXPECT_EQ(c.open_timeout_ms, 5000u) << "an error must leave the configuration untouched";
  EXPECT_EQ(ApplyConfigText("\n\nnope = 1\n", "g.toml", &c).message(),
            "g.toml:3:8: nope: unknown key (see docs/configuration.md for the keys)");
  EXPECT_EQ(ApplyConfigText("frontend_allow = [\"a\", 2]\n", "g.toml", &c).message(),
            "g.toml:1:24: frontend_allow: expected an array of strings");
  EXPECT_EQ(std::string(ApplyConfigText("a = [\n", "g.toml", &c).message()).rfind("g.toml:", 0),
            0u);
}

TEST(ConfigCheckTest, LoopbackMeansOnlyLoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackListen("127.0.0.1:8554"));
  EXPECT_TRUE(IsLoopbackListen("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackListen("[::1]:8554"));
  EXPECT_FALSE(IsLoopbackListen("0.0.0.0:8554"));
  EXPECT_FALSE(IsLoopbackListen("[::]:8554"));
  EXPECT_FALSE(IsLoopbackListen("10.0.0.5:8554"));
  EXPECT_FALSE(IsLoopbackListen("[::ffff:127.0.0.1]:8554"));  // v4-mapped: not ::1, refused
  EXPECT_FALSE(IsLoopbackListen("localhost:8554"));
}

// An agent's spares grow from spare_data_connections up to spare_data_connections_max, which
// camtunnel-agent answers at most 4 of.
TEST(ConfigCheckTest, SpareCountsAreAFloorAndACeilingOfAtMostFour) {
  for (auto [floor, ceiling, ok] :
       {std::tuple{1u, 4u, true}, std::tuple{0u, 0u, true}, std::tuple{2u, 2u, true},
        std::tuple{3u, 2u, false}, std::tuple{1u, 5u, false}, std::tuple{5u, 5u, false}}) {
    GatewayConfig c;
    c.agent_plain_listen = {"127.0.0.1:0"};
    c.streamer_keys_file = "/s.keys";  // named, not read here
    c.spare_data_connections = floor;
    c.spare_data_connections_max = ceiling;
    const absl::Status s = ResolveConfig(&c);
    EXPECT_EQ(s.ok(), ok) << floor << ".." << ceiling << ": " << s;
    if (!ok) {
      EXPECT_NE(s.message().find("spare_data_connections_max"), std::string_view::npos) << s;
    }
  }
}

TEST(ConfigCheckTest, RestartOnlyChangesAreTheListeners) {
  GatewayConfig a;
  GatewayConfig b = a;
  b.open_timeout_ms = 1;
  b.frontend_allow = {"10.0.0.0/8"};
  EXPECT_TRUE(RestartOnlyChanges(a, b).empty());
  b.admin_listen = {"127.0.0.1:1"};
  b.agent_tls_listen = {"127.0.0.1:2"};
  EXPECT_EQ(RestartOnlyChanges(a, b),
            (std::vector<std::string>{"agent_tls_listen", "admin_listen"}));
}

}  // namespace
}  // namespace camtunnel::gateway
