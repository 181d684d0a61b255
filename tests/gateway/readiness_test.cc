// /readyz through a gateway's life: 503 "not ready" until Start has opened every listener (the
// admin listener opens first, so a probe can connect before the others are up), 200 once they
// are, 503 "draining" from the moment a drain begins; and a drain with nothing open finishes at
// once.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>

#include "gateway/gateway_shard.h"
#include "runtime/shard.h"

namespace camtunnel::gateway {
namespace {

// One GET on 127.0.0.1:port from another thread while `shard` runs; returns the whole answer.
std::string Get(runtime::Shard& shard, uint16_t port, const std::string& path) {
  auto answer = std::async(std::launch::async, [port, path] {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
      [[maybe_unused]] ssize_t w = write(fd, req.data(), req.size());
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) {
        out.append(buf, static_cast<size_t>(n));
      }
    }
    close(fd);
    return out;
  });
  shard.RunUntil(
      [&] { return answer.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }, 5000);
  return answer.get();
}

TEST(ReadinessTest, NotReadyBeforeStartReadyAfterDrainingOnceDrained) {
  runtime::Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  StreamerKeys keys;
  keys.Add("k1", std::vector<uint8_t>(32, 7));
  GatewayConfig config;
  config.agent_plain_listen = {"127.0.0.1:0"};
  config.frontend_listen = {"127.0.0.1:0"};
  config.admin_listen = {"127.0.0.1:0"};
  GatewayShard gw(shard, config, std::move(keys));
  EXPECT_FALSE(gw.ready());
  ASSERT_TRUE(gw.Start().ok());
  EXPECT_TRUE(gw.ready());
  EXPECT_NE(Get(shard, gw.admin_port(), "/readyz").find("200 OK"), std::string::npos);

  bool drained = false;
  gw.Drain([&] { drained = true; });
  EXPECT_TRUE(drained) << "nothing open: the drain is over at once";
  EXPECT_FALSE(gw.ready());
  const std::string answer = Get(shard, gw.admin_port(), "/readyz");
  EXPECT_NE(answer.find("503 Service Unavailable"), std::string::npos) << answer;
  EXPECT_NE(answer.find("draining"), std::string::npos) << answer;
  EXPECT_NE(Get(shard, gw.admin_port(), "/healthz").find("200 OK"), std::string::npos);
  shard.Shutdown(2000);
}

}  // namespace
}  // namespace camtunnel::gateway
