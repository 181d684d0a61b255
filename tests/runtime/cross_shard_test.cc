// Cross-shard messaging and moving live connections between shards, over real threads, rings
// and sockets: the SPSC queue's order and bound, the MSG_RING doorbell waking a sleeping
// shard, and echo streams (plain and TLS, with KeyUpdates before and after the move, while
// another thread rotates the session ticket keys) accepted on one shard and carried on by
// another mid-conversation. The ThreadSanitizer build
// (`make test-tsan`) runs this file.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/cross_shard_queue.h"
#include "runtime/listener.h"
#include "runtime/shard_group.h"
#include "runtime/stream.h"
#include "runtime/ticket_keys.h"
#include "runtime/tls_context.h"
#include "tests/runtime/test_client.h"
#include "tests/runtime/test_tls.h"

namespace camtunnel::runtime {
namespace {

using camtunnel::testing::RandomBytes;

TEST(CrossShardQueueTest, KeepsOrderAndRefusesWhenFull) {
  CrossShardQueue q(4);
  std::vector<int> ran;
  for (int i = 0; i < 4; ++i) {
    ShardTask t = [&ran, i] { ran.push_back(i); };
    ASSERT_TRUE(q.TryPush(t));
  }
  ShardTask extra = [&ran] { ran.push_back(99); };
  EXPECT_FALSE(q.TryPush(extra));
  EXPECT_TRUE(static_cast<bool>(extra)) << "a refused task stays with the sender";
  EXPECT_EQ(q.Drain(3), 3u);
  EXPECT_TRUE(q.TryPush(extra));
  EXPECT_EQ(q.Drain(100), 2u);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 99}));
  EXPECT_TRUE(q.Empty());
}

TEST(CrossShardQueueTest, TwoThreadsPassManyTasksInOrder) {
  CrossShardQueue q(1024);
  constexpr int kTasks = 200000;
  int next = 0;  // touched only by the consumer's tasks
  bool in_order = true;
  std::thread producer([&] {
    for (int i = 0; i < kTasks;) {
      ShardTask t = [&next, &in_order, i] { in_order = in_order && next++ == i; };
      if (q.TryPush(t)) {
        ++i;
      } else {
        std::this_thread::yield();
      }
    }
  });
  int ran = 0;
  while (ran < kTasks) {
    ran += static_cast<int>(q.Drain(64));
  }
  producer.join();
  EXPECT_EQ(next, kTasks);
  EXPECT_TRUE(in_order);
}

TEST(ShardGroupTest, PingPongBetweenShardsWakesSleepingShards) {
  ShardGroup group;
  ASSERT_TRUE(group.Start(2, ShardOptions{}).ok());
  constexpr int kRounds = 2000;
  std::atomic<int> done{0};
  // Each hop runs on the receiving shard and sends the next hop back: the peer has usually
  // gone to sleep in between, so this needs the doorbell, not luck.
  struct Hop {
    static void Run(ShardGroup* g, std::atomic<int>* d, unsigned at, int left) {
      if (left == 0) {
        d->store(1);
        return;
      }
      const unsigned to = 1 - at;
      EXPECT_TRUE(g->Send(at, to, [g, d, to, left] { Run(g, d, to, left - 1); }));
    }
  };
  group.shard(0).Post([&] { Hop::Run(&group, &done, 0, kRounds); });
  for (int i = 0; i < 1000 && done.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(done.load(), 1) << "a hop was lost or never woke its shard";
  EXPECT_EQ(group.Stop(), 0u);
  EXPECT_EQ(group.shard(0).cross_shard_received() + group.shard(1).cross_shard_received(),
            static_cast<uint64_t>(kRounds));
  EXPECT_GT(group.shard(0).doorbells_rung() + group.shard(1).doorbells_rung(), 0u);
}

// Echoes what it receives. The first handler moves its stream to shard 1 after the first
// `move_after` bytes; the one there finishes the conversation.
class MovingEcho final : public StreamHandler {
 public:
  MovingEcho(ShardGroup* group, size_t move_after, std::atomic<int>* moved_count,
             std::atomic<uint64_t>* bytes_on_target)
      : group_(group),
        move_after_(move_after),
        moved_count_(moved_count),
        bytes_on_target_(bytes_on_target) {}

  void OnStreamData(Stream& s, std::span<const uint8_t> bytes) override {
    s.Write(bytes);
    seen_ += bytes.size();
    if (on_target_) {
      bytes_on_target_->fetch_add(bytes.size());
    }
    if (!on_target_ && seen_ >= move_after_ && !s.detaching()) {
      const unsigned from = s.shard().id();
      EXPECT_TRUE(s.Detach([this, from](Stream* detached) {
        on_target_ = true;
        // The stream's state travels with the task: the queue orders it.
        EXPECT_TRUE(group_->Send(from, 1, [this, detached] {
          detached->Attach(group_->shard(1), this);
          moved_count_->fetch_add(1);
        }));
      }));
    }
  }
  void OnStreamEof(Stream& s) override { s.ShutdownWrite(); }
  void OnStreamClosed(Stream& /*s*/, int error) override { close_error_ = error; }

  int close_error_ = -1;

 private:
  ShardGroup* group_;
  size_t move_after_;
  std::atomic<int>* moved_count_;
  std::atomic<uint64_t>* bytes_on_target_;
  size_t seen_ = 0;
  bool on_target_ = false;
};

// A blocking client: sends `data` in 16 KiB pieces, reading the echo of each before the next
// (TLS: a KeyUpdate every `key_update_every` pieces), then half-closes and reads to EOF.
struct EchoClientResult {
  std::vector<uint8_t> echoed;
  bool clean_end = false;
  int key_updates = 0;
};

EchoClientResult RunEchoClient(uint16_t port, const std::vector<uint8_t>& data, bool tls,
                               int key_update_every) {
  EchoClientResult r;
  const int fd = camtunnel::testing::ConnectLoopback(port);
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
      ADD_FAILURE() << "TLS handshake failed";
    }
  }
  auto send_all = [&](const uint8_t* p, size_t n) {
    return tls ? SSL_write(ssl, p, static_cast<int>(n)) == static_cast<int>(n)
               : write(fd, p, n) == static_cast<ssize_t>(n);
  };
  auto read_some = [&](uint8_t* p, size_t n) -> ssize_t {
    return tls ? SSL_read(ssl, p, static_cast<int>(n)) : read(fd, p, n);
  };
  constexpr size_t kPiece = 16384;
  uint8_t buf[kPiece];
  for (size_t off = 0, piece = 0; off < data.size(); off += kPiece, ++piece) {
    const size_t n = std::min(kPiece, data.size() - off);
    if (tls && key_update_every > 0 && piece % static_cast<size_t>(key_update_every) == 1) {
      // Ask the server to update its keys too: its answer comes inside our next reads.
      if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1) {
        ++r.key_updates;
      }
    }
    if (!send_all(data.data() + off, n)) {
      ADD_FAILURE() << "write failed at " << off;
      break;
    }
    size_t got = 0;
    while (got < n) {
      const ssize_t m = read_some(buf, sizeof(buf));
      if (m <= 0) {
        ADD_FAILURE() << "echo ended early at " << off + got;
        break;
      }
      r.echoed.insert(r.echoed.end(), buf, buf + m);
      got += static_cast<size_t>(m);
    }
  }
  if (tls) {
    SSL_shutdown(ssl);
  }
  shutdown(fd, SHUT_WR);
  for (;;) {
    const ssize_t m = read_some(buf, sizeof(buf));
    if (m <= 0) {
      r.clean_end = m == 0;
      break;
    }
    r.echoed.insert(r.echoed.end(), buf, buf + m);
  }
  if (tls) {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  close(fd);
  return r;
}

class StreamMoveTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto ctx = CreateServerContext({cert_.cert_file, cert_.key_file});
      ASSERT_TRUE(ctx.ok()) << ctx.status();
      ctx_ = std::move(*ctx);
      ticket_keys_->Install(ctx_.get());  // tickets are sealed while keys rotate (below)
    }
    ASSERT_TRUE(
        group_
            .Start(2, ShardOptions{},
                   [this](Shard& shard) {
                     if (shard.id() != 0) {
                       return;
                     }
                     auto l = Listener::Open(shard, "127.0.0.1:0", [this, &shard](int fd) {
                       std::lock_guard<std::mutex> lock(mu_);
                       handlers_.push_back(std::make_unique<MovingEcho>(
                           &group_, kMoveAfter, &moved_, &bytes_on_target_));
                       Stream::Create(shard, fd, ctx_.get(), handlers_.back().get())->Start();
                     });
                     ASSERT_TRUE(l.ok()) << l.status();
                     port_.store((*l)->port());
                     listener_ = std::move(*l);
                   })
            .ok());
  }
  void TearDown() override {
    group_.shard(0).Post([this] { listener_.reset(); });
    EXPECT_EQ(group_.Stop(), 0u) << "every stream closed and freed on its final shard";
  }

  static constexpr size_t kMoveAfter = 100000;
  camtunnel::testing::TestCert cert_;
  std::unique_ptr<TicketKeys> ticket_keys_ = TicketKeys::Generate();
  SslCtxPtr ctx_;
  ShardGroup group_;
  std::unique_ptr<Listener> listener_;  // shard 0's
  std::atomic<uint16_t> port_{0};
  std::mutex mu_;  // handlers_ is appended on shard 0 and read by the test at the end
  std::vector<std::unique_ptr<MovingEcho>> handlers_;
  std::atomic<int> moved_{0};
  std::atomic<uint64_t> bytes_on_target_{0};
};

TEST_P(StreamMoveTest, ConversationsContinueOnTheTargetShardByteForByte) {
  const bool tls = GetParam();
  constexpr int kClients = 4;
  std::vector<std::vector<uint8_t>> data;
  std::vector<EchoClientResult> results(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    data.push_back(RandomBytes(1 << 20, 10 + static_cast<uint32_t>(i)));
  }
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(
        [&, i] { results[i] = RunEchoClient(port_.load(), data[i], tls, /*key_update=*/8); });
  }
  // The operator's reload rotating ticket keys from another thread while shards seal tickets.
  std::atomic<bool> clients_done{false};
  std::thread rotator([&] {
    while (!clients_done.load()) {
      ticket_keys_->Rotate(TicketKey::Random());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (auto& c : clients) {
    c.join();
  }
  clients_done.store(true);
  rotator.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(results[i].echoed == data[i])
        << "client " << i << ": " << results[i].echoed.size() << " bytes echoed";
    EXPECT_TRUE(results[i].clean_end) << "client " << i;
    if (tls) {
      EXPECT_GT(results[i].key_updates, 4) << "KeyUpdates on both sides of the move";
    }
  }
  EXPECT_EQ(moved_.load(), kClients);
  // Everything after the first ~100 KB of each was echoed by shard 1.
  EXPECT_GT(bytes_on_target_.load(),
            static_cast<uint64_t>(kClients) * ((1 << 20) - 2 * kMoveAfter));
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, StreamMoveTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

}  // namespace
}  // namespace camtunnel::runtime
