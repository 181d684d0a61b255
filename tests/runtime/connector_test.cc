// Outgoing connections through the ring, and a TLS client stream talking to a TLS server
// stream on the same shard.
#include "runtime/connector.h"

#include <gtest/gtest.h>

#include <memory>

#include "runtime/listener.h"
#include "runtime/stream.h"
#include "runtime/tls_context.h"
#include "tests/runtime/test_client.h"
#include "tests/runtime/test_tls.h"

namespace camtunnel::runtime {
namespace {

class Collector final : public StreamHandler {
 public:
  void OnStreamReady(Stream& s) override {
    ready = true;
    if (!greeting.empty()) {
      s.Write(greeting);
      s.ShutdownWrite();
    }
  }
  void OnStreamData(Stream& s, std::span<const uint8_t> bytes) override {
    data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (echo) {
      s.Write(bytes);
    }
  }
  void OnStreamEof(Stream& s) override {
    eof = true;
    if (echo) {
      s.ShutdownWrite();
    }
  }
  void OnStreamClosed(Stream& /*s*/, int e) override {
    closed = true;
    error = e;
  }
  std::string greeting;
  bool echo = false;
  bool ready = false;
  std::string data;
  bool eof = false;
  bool closed = false;
  int error = -1;
};

sockaddr_storage Loopback(uint16_t port) {
  auto a = ParseListenAddress("127.0.0.1:" + std::to_string(port));
  return *a;
}

TEST(ConnectorTest, ReportsRefusedConnections) {
  Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  // A port that was just free: nothing listens there.
  const int probe = camtunnel::testing::ConnectLoopback(1);
  ASSERT_LT(probe, 0);
  int result = 0;
  Connector::Start(shard, Loopback(1), std::nullopt, 2000, [&](int r) { result = r; });
  shard.RunUntil([&] { return result != 0; }, 5000);
  EXPECT_EQ(result, -ECONNREFUSED);
  EXPECT_EQ(shard.Shutdown(1000), 0u);
}

TEST(ConnectorTest, TlsClientStreamTalksToTlsServerStream) {
  Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  camtunnel::testing::TestCert cert;
  auto server_ctx = CreateServerContext({cert.cert_file, cert.key_file});
  ASSERT_TRUE(server_ctx.ok());
  auto client_ctx = CreateClientContext(cert.cert_file, /*insecure=*/false);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();
  Collector server;
  server.echo = true;
  auto listener = Listener::Open(shard, "127.0.0.1:0", [&](int fd) {
    Stream::Create(shard, fd, server_ctx->get(), &server)->Start();
  });
  ASSERT_TRUE(listener.ok());
  Collector client;
  client.greeting = std::string(100000, 'x') + "end";
  std::optional<sockaddr_storage> from = Loopback(0);
  reinterpret_cast<sockaddr_in*>(&*from)->sin_addr.s_addr = htonl(0x7f000002);  // 127.0.0.2
  Connector::Start(shard, Loopback((*listener)->port()), from, 2000, [&](int fd) {
    ASSERT_GE(fd, 0);
    Stream::CreateTlsClient(shard, fd, client_ctx->get(), "localhost", &client)->Start();
  });
  shard.RunUntil([&] { return client.closed && server.closed; }, 10000);
  EXPECT_TRUE(client.ready);
  EXPECT_EQ(server.data, client.greeting);
  EXPECT_EQ(client.data, client.greeting);  // echoed back, then close_notify both ways
  EXPECT_EQ(client.error, 0);
  EXPECT_EQ(server.error, 0);
  listener->reset();
  EXPECT_EQ(shard.Shutdown(1000), 0u);
}

TEST(ConnectorTest, TlsClientRefusesAWrongHostName) {
  Shard shard;
  ASSERT_EQ(shard.Init({}), 0);
  camtunnel::testing::TestCert cert;
  auto server_ctx = CreateServerContext({cert.cert_file, cert.key_file});
  auto client_ctx = CreateClientContext(cert.cert_file, false);
  ASSERT_TRUE(server_ctx.ok() && client_ctx.ok());
  Collector server;
  auto listener = Listener::Open(shard, "127.0.0.1:0", [&](int fd) {
    Stream::Create(shard, fd, server_ctx->get(), &server)->Start();
  });
  ASSERT_TRUE(listener.ok());
  Collector client;
  Connector::Start(shard, Loopback((*listener)->port()), std::nullopt, 2000, [&](int fd) {
    ASSERT_GE(fd, 0);
    Stream::CreateTlsClient(shard, fd, client_ctx->get(), "not-the-gateway.example", &client)
        ->Start();
  });
  shard.RunUntil([&] { return client.closed; }, 10000);
  EXPECT_FALSE(client.ready);
  EXPECT_EQ(client.error, EPROTO);
  listener->reset();
  EXPECT_EQ(shard.Shutdown(1000), 0u);
}

}  // namespace
}  // namespace camtunnel::runtime
