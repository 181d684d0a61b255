// Stream over real loopback sockets and a real io_uring: ordering, half-close, TLS, reset,
// backpressure, and teardown with operations in flight (the sanitizer build runs these).
#include "runtime/stream.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "runtime/ktls_probe.h"
#include "runtime/listener.h"
#include "runtime/shard.h"
#include "runtime/tls_context.h"
#include "tests/runtime/test_client.h"
#include "tests/runtime/test_tls.h"

namespace camtunnel::runtime {
namespace {

using camtunnel::testing::Exchange;
using camtunnel::testing::ExchangeResult;
using camtunnel::testing::RandomBytes;

// Echoes everything, pausing its own reads while its send queue is over the watermark, and
// half-closes when the peer does.
class EchoHandler final : public StreamHandler {
 public:
  void OnStreamData(Stream& s, std::span<const uint8_t> bytes) override {
    received += bytes.size();
    if (close_on_data_ != 0) {
      s.Close(close_on_data_);
      return;
    }
    if (pause_after_first_) {
      s.PauseRead();
      return;
    }
    s.Write(bytes);
    if (s.over_high_watermark()) {
      s.PauseRead();
    }
  }
  void OnStreamEof(Stream& s) override {
    eof = true;
    s.ShutdownWrite();
  }
  void OnStreamWritable(Stream& s) override { s.ResumeRead(); }
  void OnStreamClosed(Stream& s, int error) override {
    closed = true;
    close_error = error;
    kernel_encrypted = s.kernel_encrypts();
  }

  int close_on_data_ = 0;
  bool kernel_encrypted = false;
  bool pause_after_first_ = false;
  uint64_t received = 0;
  bool eof = false;
  bool closed = false;
  int close_error = -1;
};

// Relays a TLS stream's plaintext into a plain stream, the way a tunnel passes a camera's bytes
// to the media server: through RelayTarget, so records are decrypted into the target's queue.
class RelayToPlainHandler final : public StreamHandler {
 public:
  // The copying path: unused for TLS records while the target is open; a plain source takes it
  // for receives too small to hand over.
  void OnStreamData(Stream& /*s*/, std::span<const uint8_t> bytes) override {
    delivered += bytes.size();
    target->Write(bytes);
  }
  Stream* RelayTarget(Stream& /*s*/) override { return target; }
  void OnStreamRelayed(Stream& s, size_t bytes) override {
    relayed += bytes;
    if (target->over_high_watermark()) {
      s.PauseRead();
      source = &s;
      paused = true;
    }
  }
  void OnStreamEof(Stream& s) override {
    target->ShutdownWrite();
    s.ShutdownWrite();
  }
  void OnStreamClosed(Stream& /*s*/, int /*error*/) override { source = nullptr; }

  Stream* target = nullptr;
  Stream* source = nullptr;  // the TLS stream, while paused and alive
  bool paused = false;
  uint64_t delivered = 0;
  uint64_t relayed = 0;
};

// The plain side's handler: resumes the TLS source once the queue drained.
class TargetHandler final : public StreamHandler {
 public:
  explicit TargetHandler(RelayToPlainHandler* relay) : relay_(relay) {}
  void OnStreamData(Stream& /*s*/, std::span<const uint8_t> /*bytes*/) override {}
  void OnStreamEof(Stream& /*s*/) override {}
  void OnStreamWritable(Stream& /*s*/) override {
    if (relay_->source != nullptr) {
      relay_->source->ResumeRead();
    }
  }
  void OnStreamClosed(Stream& /*s*/, int /*error*/) override { relay_->target = nullptr; }

 private:
  RelayToPlainHandler* relay_;
};

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(shard_.Init({}), 0); }

  void Listen(bool tls, bool kernel_tls = false) {
    if (tls) {
      auto ctx = CreateServerContext({cert_.cert_file, cert_.key_file});
      ASSERT_TRUE(ctx.ok()) << ctx.status();
      ctx_ = std::move(*ctx);
      if (kernel_tls) {
        SSL_CTX_set_options(ctx_.get(), SSL_OP_ENABLE_KTLS);
      }
    }
    auto l = Listener::Open(shard_, "127.0.0.1:0", [this](int fd) {
      handlers_.push_back(std::make_unique<EchoHandler>());
      EchoHandler* h = handlers_.back().get();
      h->close_on_data_ = close_on_data_;
      h->pause_after_first_ = pause_after_first_;
      Stream* s = Stream::Create(shard_, fd, ctx_.get(), h);
      streams_.push_back(s);
      s->Start();
    });
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  }

  // Runs the exchange on a client thread while this thread drives the shard.
  // A relay from a source stream (TLS or plain) into a plain target whose reader starts late,
  // so the target's queue fills past one chunk (gathering sends) and past the high watermark
  // (the source pauses, then resumes). Returns what the reader got; both streams have ended.
  std::vector<uint8_t> RelayIntoLatePlainReader(bool tls, RelayToPlainHandler& relay,
                                                const std::vector<uint8_t>& data) {
    if (tls) {
      auto ctx = CreateServerContext({cert_.cert_file, cert_.key_file});
      EXPECT_TRUE(ctx.ok()) << ctx.status();
      ctx_ = std::move(*ctx);
    }
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    TargetHandler target_handler(&relay);
    relay.target = Stream::Create(shard_, pair[0], nullptr, &target_handler);
    relay.target->Start();
    SSL_CTX* source_ctx = tls ? ctx_.get() : nullptr;
    auto l = Listener::Open(shard_, "127.0.0.1:0", [&, source_ctx](int fd) {
      Stream::Create(shard_, fd, source_ctx, &relay)->Start();
    });
    EXPECT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
    auto reader = std::async(std::launch::async, [fd = pair[1]] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::vector<uint8_t> got;
      uint8_t buf[65536];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) {
        got.insert(got.end(), buf, buf + n);
      }
      close(fd);
      return got;
    });
    const ExchangeResult r = RunClient(data, tls, false);
    shard_.RunUntil(
        [&] { return reader.wait_for(std::chrono::seconds(0)) == std::future_status::ready; },
        20000);
    EXPECT_TRUE(r.handshake_ok);
    EXPECT_EQ(r.error, 0);
    // Both streams end by themselves (EOF or close_notify, then the reader's close); the
    // handlers live on the caller's stack, so nothing may be left for TearDown to call into.
    shard_.RunUntil([&] { return shard_.live_streams() == 0; }, 10000);
    EXPECT_EQ(shard_.live_streams(), 0u);
    return reader.get();
  }

  // A TLS client sends `bytes` random bytes and half-closes; the server echoes them, ends with
  // close_notify, and every byte came back.
  void ExpectTlsEcho(size_t bytes, uint32_t seed) {
    const auto data = RandomBytes(bytes, seed);
    const ExchangeResult r = RunClient(data, true, true);
    EXPECT_TRUE(r.handshake_ok);
    EXPECT_EQ(r.error, 0);
    EXPECT_TRUE(r.eof);
    EXPECT_TRUE(r.received == data) << "received " << r.received.size() << " of " << data.size();
    ASSERT_EQ(handlers_.size(), 1u);
    EXPECT_EQ(handlers_[0]->close_error, 0);
  }

  ExchangeResult RunClient(const std::vector<uint8_t>& data, bool tls, bool wait_server_close) {
    auto fut =
        std::async(std::launch::async, [&] { return Exchange(listener_->port(), data, tls); });
    shard_.RunUntil(
        [&] { return fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }, 30000);
    if (wait_server_close) {
      shard_.RunUntil([&] { return shard_.live_streams() == 0; }, 5000);
    }
    return fut.get();
  }

  void TearDown() override {
    listener_.reset();
    EXPECT_EQ(shard_.Shutdown(5000), 0u);
  }

  Shard shard_;
  camtunnel::testing::TestCert cert_;
  SslCtxPtr ctx_;
  std::unique_ptr<Listener> listener_;
  std::vector<std::unique_ptr<EchoHandler>> handlers_;
  std::vector<Stream*> streams_;
  int close_on_data_ = 0;
  bool pause_after_first_ = false;
};

TEST_F(StreamTest, EchoesEveryByteInOrderAndPropagatesHalfClose) {
  Listen(false);
  const auto data = RandomBytes(16 << 20, 1);
  const ExchangeResult r = RunClient(data, false, true);
  EXPECT_EQ(r.error, 0);
  EXPECT_TRUE(r.eof);
  EXPECT_TRUE(r.received == data) << "received " << r.received.size() << " of " << data.size();
  ASSERT_EQ(handlers_.size(), 1u);
  EXPECT_TRUE(handlers_[0]->eof);
  EXPECT_TRUE(handlers_[0]->closed);
  EXPECT_EQ(handlers_[0]->close_error, 0);
}

TEST_F(StreamTest, EchoesOverTlsAndEndsWithCloseNotify) {
  Listen(true);
  ExpectTlsEcho(4 << 20, 2);
}

// With kernel TLS asked for, the kernel encrypts what the stream sends where it has kTLS (the
// flight OpenSSL sealed goes out first, then the keys, then tickets and data as records of
// their types); where it has not (this build machine), the socket refuses the upper-layer
// protocol and OpenSSL keeps the keys. Either way every byte comes back and the close_notify
// ends the stream.
TEST_F(StreamTest, EchoesOverTlsWithKernelTlsWhereTheKernelTakesIt) {
  Listen(true, /*kernel_tls=*/true);
  ExpectTlsEcho(2 << 20, 7);
  EXPECT_EQ(handlers_[0]->kernel_encrypted, ProbeKernelTls().available);
}

TEST_F(StreamTest, ErrorCloseResetsThePeer) {
  close_on_data_ = ECONNRESET;
  Listen(false);
  const ExchangeResult r = RunClient(RandomBytes(1000, 3), false, true);
  EXPECT_FALSE(r.eof);
  EXPECT_EQ(r.error, ECONNRESET);
}

TEST_F(StreamTest, TlsHandshakeGarbageClosesWithProtocolError) {
  Listen(true);
  // Not a ClientHello: the server must close with an error, never hang or crash.
  const ExchangeResult r = RunClient(RandomBytes(300, 4), false, true);
  EXPECT_TRUE(r.received.empty() || r.received[0] == 0x15);  // nothing, or a TLS alert
  ASSERT_EQ(handlers_.size(), 1u);
  EXPECT_TRUE(handlers_[0]->closed);
  EXPECT_EQ(handlers_[0]->close_error, EPROTO);
}

TEST_F(StreamTest, PausedStreamStopsDelivering) {
  pause_after_first_ = true;
  Listen(false);
  const auto data = RandomBytes(32 << 20, 5);
  auto client = std::async(std::launch::async, [&] {
    return Exchange(listener_->port(), data, false, /*max_ms=*/1500, /*half_close=*/true);
  });
  shard_.RunUntil(
      [&] { return client.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }, 10000);
  client.get();
  ASSERT_EQ(handlers_.size(), 1u);
  // Only what was already in flight when the pause took effect: far less than was sent.
  EXPECT_GT(handlers_[0]->received, 0u);
  EXPECT_LT(handlers_[0]->received, 4u << 20);
}

TEST_F(StreamTest, DecryptsStraightIntoAPlainTargetEveryByteInOrder) {
  RelayToPlainHandler relay;
  const auto data = RandomBytes(8 << 20, 6);
  const std::vector<uint8_t> got = RelayIntoLatePlainReader(true, relay, data);
  EXPECT_TRUE(got == data) << "received " << got.size() << " of " << data.size();
  EXPECT_EQ(relay.relayed, data.size());
  EXPECT_EQ(relay.delivered, 0u);
  EXPECT_TRUE(relay.paused) << "the target never went over its high watermark";
}

TEST_F(StreamTest, HandsPlainReceiveBuffersToAPlainTargetEveryByteInOrder) {
  RelayToPlainHandler relay;
  const auto data = RandomBytes(8 << 20, 7);
  const uint32_t published_before = shard_.buffers().published();
  const std::vector<uint8_t> got = RelayIntoLatePlainReader(false, relay, data);
  EXPECT_TRUE(got == data) << "received " << got.size() << " of " << data.size();
  // Whole receive buffers went over without a copy; the few short receives were copied.
  EXPECT_EQ(relay.relayed + relay.delivered, data.size());
  EXPECT_GT(relay.relayed, data.size() / 2);
  EXPECT_TRUE(relay.paused) << "the target never went over its high watermark";
  // Every buffer handed over was replaced: the ring is whole and nothing is in use.
  EXPECT_EQ(shard_.buffers().in_use(), 0u);
  EXPECT_GE(shard_.buffers().published(), published_before);
}

TEST_F(StreamTest, ShutdownClosesStreamsWithOperationsInFlight) {
  Listen(true);
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    fds.push_back(camtunnel::testing::ConnectLoopback(listener_->port()));
  }
  shard_.RunUntil([&] { return streams_.size() == fds.size(); }, 5000);
  ASSERT_EQ(streams_.size(), fds.size());
  // Every stream has a multishot receive armed (mid-handshake); shutdown must cancel them all
  // and free every stream. TearDown asserts none is left.
  listener_.reset();
  EXPECT_EQ(shard_.Shutdown(5000), 0u);
  for (int fd : fds) {
    close(fd);
  }
}

// Remembers what its stream says of its peer when the stream closes.
class PeerNamingHandler final : public StreamHandler {
 public:
  void OnStreamData(Stream& /*s*/, std::span<const uint8_t> /*bytes*/) override {}
  void OnStreamEof(Stream& /*s*/) override {}
  void OnStreamClosed(Stream& s, int error) override {
    peer_at_close = s.peer_text();
    close_error = error;
    closed = true;
  }
  std::string peer_at_close;
  int close_error = 0;
  bool closed = false;
};

// The peer's address is kept in compact form and named on demand, also once the connection
// is gone (a disconnect is when it gets logged), for IPv4 and IPv6.
TEST_F(StreamTest, NamesItsPeerAfterThePeerResets) {
  for (const char* listen_at : {"127.0.0.1:0", "[::1]:0"}) {
    const bool v6 = listen_at[0] == '[';
    Stream* accepted = nullptr;
    PeerNamingHandler handler;
    auto l = Listener::Open(shard_, listen_at, [&](int fd) {
      accepted = Stream::Create(shard_, fd, nullptr, &handler);
      accepted->Start();
    });
    ASSERT_TRUE(l.ok()) << l.status();
    const int client = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage to{};
    socklen_t to_len = 0;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&to);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      a->sin6_port = htons((*l)->port());
      to_len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&to);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->sin_port = htons((*l)->port());
      to_len = sizeof(*a);
    }
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&to), to_len), 0);
    sockaddr_storage mine{};
    socklen_t mine_len = sizeof(mine);
    ASSERT_EQ(getsockname(client, reinterpret_cast<sockaddr*>(&mine), &mine_len), 0);
    const unsigned port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&mine)->sin6_port
                                   : reinterpret_cast<sockaddr_in*>(&mine)->sin_port);
    shard_.RunUntil([&] { return accepted != nullptr; }, 5000);
    ASSERT_NE(accepted, nullptr);
    const std::string expected = (v6 ? "[::1]:" : "127.0.0.1:") + std::to_string(port);
    EXPECT_EQ(accepted->peer_text(), expected);
    linger reset{1, 0};
    setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    close(client);
    shard_.RunUntil([&] { return handler.closed; }, 5000);
    ASSERT_TRUE(handler.closed);
    EXPECT_EQ(handler.close_error, ECONNRESET);
    EXPECT_EQ(handler.peer_at_close, expected);  // the socket is closed: getpeername fails
  }
}

}  // namespace
}  // namespace camtunnel::runtime
