// The gateway in-process on real shards (one, and three so that most connections are accepted
// by a shard other than their agent's home and are handed over), with a fake agent written
// against proto/ on blocking sockets: the whole path (upgrade, HELLO, OPEN, data proof, relay,
// half-close) and the attacks on it. The sanitizer build runs this, so every handler's teardown
// and every hand-over between shards is checked for leaks and use-after-free.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <optional>
#include <string>
#include <thread>

#include "gateway/gateway.h"
#include "gateway/gateway_shard.h"
#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "proto/upgrade.h"
#include "runtime/clock.h"
#include "runtime/shard.h"
#include "tests/runtime/test_client.h"

namespace camtunnel::gateway {
namespace {

using camtunnel::testing::ConnectLoopback;

void SendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads until the end of a head; returns it (and keeps what followed in `rest`).
std::string ReadHead(int fd, std::string* rest) {
  std::string buf;
  char c[4096];
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  while (buf.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = recv(fd, c, sizeof(c), 0);
    if (n <= 0) {
      break;
    }
    buf.append(c, static_cast<size_t>(n));
  }
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) {
    return buf;
  }
  if (rest != nullptr) {
    *rest = buf.substr(end + 4);
  }
  return buf.substr(0, end + 4);
}

std::string ReadToEof(int fd) {
  std::string out;
  char c[65536];
  for (;;) {
    const ssize_t n = recv(fd, c, sizeof(c), 0);
    if (n <= 0) {
      break;
    }
    out.append(c, static_cast<size_t>(n));
  }
  return out;
}

class GatewayTest : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    streamer_key_.assign(32, 7);
    StreamerKeys keys;
    keys.Add("k1", streamer_key_);
    GatewayConfig config;
    config.agent_plain_listen = {"127.0.0.1:0"};
    config.frontend_listen = {"127.0.0.1:0"};
    config.admin_listen = {"127.0.0.1:0"};
    config.open_timeout_ms = 1500;
    Configure(config);
    gw_ = std::make_unique<Gateway>(config, std::move(keys));
    ASSERT_TRUE(gw_->Start(GetParam(), QueueCapacity()).ok());
  }

  virtual size_t QueueCapacity() const { return runtime::ShardGroup::kQueueCapacity; }
  virtual void Configure(GatewayConfig& /*config*/) {}

  std::string AdminGet(std::string_view path, std::string_view extra_headers = "") {
    const int fd = ConnectLoopback(gw_->admin_port());
    SendAll(fd, "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" +
                    std::string(extra_headers) + "\r\n");
    std::string out = ReadToEof(fd);
    close(fd);
    return out;
  }

  void TearDown() override {
    if (gw_) {
      EXPECT_EQ(gw_->Stop(5000), 0u);
      gw_.reset();
    }
  }

  proto::KeyRef Ref() const { return {"k1", runtime::WallMs() / 1000 + 3600}; }
  proto::Digest Key(std::string_view agent) const {
    return proto::DeriveAgentKey(streamer_key_, agent, Ref());
  }

  // A plain-mode agent session: upgrade, gateway proof check, HELLO, WELCOME.
  struct FakeAgent {
    int fd = -1;
    std::string agent;
    proto::KeyRef ref;
    proto::Digest key{};
    std::optional<proto::FrameSealer> sealer;
    std::optional<proto::FrameOpener> opener;
    proto::FrameDecoder decoder;
    std::string pending;
    ~FakeAgent() {
      if (fd >= 0) {
        close(fd);
      }
    }
    std::optional<proto::Frame> Next() {
      for (;;) {
        std::span<const uint8_t> in = proto::AsBytes(pending);
        proto::Frame f;
        const auto st = decoder.Decode(in, &f);
        pending.erase(0, pending.size() - in.size());
        if (st == proto::DecodeStatus::kFrame) {
          if (!opener->Open(f)) {
            return std::nullopt;
          }
          return f;
        }
        char c[4096];
        const ssize_t n = recv(fd, c, sizeof(c), 0);
        if (n <= 0) {
          return std::nullopt;
        }
        pending.append(c, static_cast<size_t>(n));
      }
    }
    void Send(proto::FrameBuilder& f) {
      const auto bytes = sealer->Seal(f);
      SendAll(fd, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
  };

  std::unique_ptr<FakeAgent> Connect(std::string_view agent, bool correct_proof = true) {
    auto a = std::make_unique<FakeAgent>();
    a->agent = std::string(agent);
    a->ref = Ref();
    a->key = Key(agent);
    a->fd = ConnectLoopback(gw_->agent_plain_port());
    proto::Nonce nonce;
    proto::RandomBytes(nonce);
    SendAll(a->fd, proto::BuildControlRequest("gw", agent, a->ref, nonce));
    const std::string head = ReadHead(a->fd, &a->pending);
    proto::ResponseHead rh;
    if (proto::ParseResponseHead(head, &rh) != proto::HeadResult::kComplete || rh.status != 101) {
      return nullptr;
    }
    auto accept = proto::ParseControlAccept(rh);
    EXPECT_TRUE(accept.has_value());
    const proto::HandshakeProofInput in{
        agent, &a->ref, nonce, accept->gateway_nonce, proto::Transport::kPlain, {}};
    EXPECT_EQ(proto::GatewayProof(a->key, in), accept->gateway_proof);
    const proto::Digest session = proto::SessionKey(a->key, nonce, accept->gateway_nonce);
    a->sealer.emplace(session, proto::Direction::kAgentToGateway);
    a->opener.emplace(session, proto::Direction::kGatewayToAgent);
    proto::Digest proof = proto::AgentProof(a->key, in);
    if (!correct_proof) {
      proof[0] ^= 1;
    }
    proto::FrameBuilder hello(proto::FrameType::kHello);
    hello.Add(proto::Tag::kProof, proof)
        .AddU32(proto::Tag::kCapabilities, proto::kCapPlainFrameMac)
        .AddText(proto::Tag::kService, "echo=127.0.0.1:9");
    a->Send(hello);
    return a;
  }

  // Connects the data side of an OPEN; returns the fd after reading the gateway's answer head.
  int OpenData(FakeAgent& as, const proto::Frame& open, int* status, std::string_view agent = "",
               const proto::Digest* key = nullptr, std::string_view pipelined = "",
               std::string* rest = nullptr) {
    const auto id = proto::ParseTunnelId(*open.Text(proto::Tag::kTunnelId));
    const auto nonce = *open.Bytes(proto::Tag::kNonce);
    const std::string who = agent.empty() ? as.agent : std::string(agent);
    const proto::Digest k = key != nullptr ? *key : as.key;
    const proto::DataProofInput in{who, &as.ref, *id, nonce, proto::Transport::kPlain, {}};
    const int fd = ConnectLoopback(gw_->agent_plain_port());
    SendAll(fd, proto::BuildDataRequest("gw", who, as.ref, *id, proto::DataProof(k, in)) +
                    std::string(pipelined));
    proto::ResponseHead rh;
    const std::string head = ReadHead(fd, rest);
    *status = proto::ParseResponseHead(head, &rh) == proto::HeadResult::kComplete ? rh.status : 0;
    return fd;
  }

  std::string Metrics() {
    const int fd = ConnectLoopback(gw_->admin_port());
    SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string out = ReadToEof(fd);
    close(fd);
    return out;
  }

  // The value of one sample line of /metrics ("name{labels}"), or -1.
  double Sample(std::string_view series) {
    const std::string text = Metrics();
    const size_t at = text.find("\n" + std::string(series) + " ");
    if (at == std::string::npos) {
      return -1;
    }
    return std::stod(text.substr(at + series.size() + 2));
  }

  std::vector<uint8_t> streamer_key_;
  std::unique_ptr<Gateway> gw_;
};

TEST_P(GatewayTest, RelaysConnectTunnelBothWaysWithHalfClose) {
  auto agent = Connect("cam-1");
  ASSERT_NE(agent, nullptr);
  auto welcome = agent->Next();
  ASSERT_TRUE(welcome && welcome->type() == static_cast<uint8_t>(proto::FrameType::kWelcome));

  const int client = ConnectLoopback(gw_->frontend_port());
  SendAll(client, "CONNECT cam-1:echo HTTP/1.1\r\nHost: cam-1:echo\r\n\r\n");
  auto open = agent->Next();
  ASSERT_TRUE(open && open->type() == static_cast<uint8_t>(proto::FrameType::kOpen));
  int status = 0;
  const int data = OpenData(*agent, *open, &status);
  ASSERT_EQ(status, 101);
  EXPECT_EQ(ReadHead(client, nullptr), "HTTP/1.1 200 Connection established\r\n\r\n");

  const std::string up(300000, 'u');
  const std::string down(200000, 'd');
  SendAll(client, up);
  shutdown(client, SHUT_WR);
  SendAll(data, down);
  shutdown(data, SHUT_WR);
  EXPECT_EQ(ReadToEof(data), up);  // the camera side saw every byte, then the half-close
  EXPECT_EQ(ReadToEof(client), down);
  close(client);
  close(data);

  // A replayed data proof for the same tunnel: the tunnel is single-use.
  int replay_status = 0;
  close(OpenData(*agent, *open, &replay_status));
  EXPECT_EQ(replay_status, 404);
}

TEST_P(GatewayTest, AnotherAgentCannotAnswerATunnel) {
  auto a = Connect("cam-a");
  auto b = Connect("cam-b");
  ASSERT_TRUE(a && b && a->Next() && b->Next());
  const int client = ConnectLoopback(gw_->frontend_port());
  SendAll(client, "CONNECT cam-b:echo HTTP/1.1\r\nHost: x\r\n\r\n");
  auto open = b->Next();
  ASSERT_TRUE(open.has_value());
  int status = 0;
  // Agent A, with its own valid key, answers B's tunnel.
  close(OpenData(*a, *open, &status, "cam-a", &a->key));
  EXPECT_EQ(status, 403);
  // A forged proof for B's tunnel is refused but leaves the tunnel to B.
  const proto::Digest wrong{};
  close(OpenData(*b, *open, &status, "", &wrong));
  EXPECT_EQ(status, 401);
  const int data = OpenData(*b, *open, &status);
  EXPECT_EQ(status, 101);
  close(data);
  close(client);
}

TEST_P(GatewayTest, WrongHelloProofDoesNotEvictTheLiveSession) {
  auto real = Connect("cam-1");
  ASSERT_TRUE(real && real->Next());
  auto forged = Connect("cam-1", /*correct_proof=*/false);
  ASSERT_NE(forged, nullptr);
  auto answer = forged->Next();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->type(), static_cast<uint8_t>(proto::FrameType::kError));
  EXPECT_EQ(answer->U16(proto::Tag::kErrorCode),
            static_cast<uint16_t>(proto::ErrorCode::kBadProof));
  // The real session still gets OPENs.
  const int client = ConnectLoopback(gw_->frontend_port());
  SendAll(client, "CONNECT cam-1:echo HTTP/1.1\r\nHost: x\r\n\r\n");
  auto open = real->Next();
  ASSERT_TRUE(open.has_value());
  EXPECT_EQ(open->type(), static_cast<uint8_t>(proto::FrameType::kOpen));
  close(client);
  EXPECT_NE(
      Metrics().find("camtunnel_agent_connections_total{kind=\"control\",result=\"bad_proof\"} 1"),
      std::string::npos);
}

TEST_P(GatewayTest, ForgedFrameInPlainModeIsRejected) {
  auto a = Connect("cam-1");
  ASSERT_TRUE(a && a->Next());
  // A PING without the MAC, as an injector on the path would send it.
  proto::FrameBuilder ping(proto::FrameType::kPing);
  ping.AddU64(proto::Tag::kSequence, 1);
  const auto raw = ping.Finish();
  SendAll(a->fd, std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  EXPECT_EQ(ReadToEof(a->fd).size() > 0, true);  // an ERROR, then the close
  EXPECT_NE(Metrics().find("camtunnel_control_frames_rejected_total{reason=\"bad_mac\"} 1"),
            std::string::npos);
}

TEST_P(GatewayTest, FrontendAnswersUnknownOfflineAndTimeout) {
  const int c1 = ConnectLoopback(gw_->frontend_port());
  SendAll(c1, "OPTIONS rtsp://127.0.0.1/nobody/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n");
  const std::string r1 = ReadHead(c1, nullptr);
  EXPECT_EQ(r1.rfind("RTSP/1.0 404", 0), 0u) << r1;
  EXPECT_NE(r1.find("CSeq: 2"), std::string::npos);
  close(c1);

  auto a = Connect("cam-1");
  ASSERT_TRUE(a && a->Next());
  // The agent never dials back: 504 after the open deadline.
  const int c2 = ConnectLoopback(gw_->frontend_port());
  SendAll(c2, "GET /cam-1/snapshot.jpg HTTP/1.1\r\nHost: gw\r\n\r\n");
  const std::string r2 = ReadHead(c2, nullptr);
  EXPECT_EQ(r2.rfind("HTTP/1.1 403", 0), 0u) << r2;  // "http" is not exposed by this agent
  close(c2);
  const int c3 = ConnectLoopback(gw_->frontend_port());
  const uint64_t t0 = runtime::MonotonicMs();
  SendAll(c3, "CONNECT cam-1:echo HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string r3 = ReadHead(c3, nullptr);
  EXPECT_EQ(r3.rfind("HTTP/1.1 504", 0), 0u) << r3;
  EXPECT_LT(runtime::MonotonicMs() - t0, 4000u);
  close(c3);

  close(a->fd);
  a->fd = -1;
  // Seen before, offline now: 503. The registry forgets the session once its close is seen.
  std::string r4;
  for (int i = 0; i < 50; ++i) {
    const int c4 = ConnectLoopback(gw_->frontend_port());
    SendAll(c4, "CONNECT cam-1:echo HTTP/1.1\r\nHost: x\r\n\r\n");
    r4 = ReadHead(c4, nullptr);
    close(c4);
    if (r4.rfind("HTTP/1.1 503", 0) == 0) {
      break;
    }
  }
  EXPECT_EQ(r4.rfind("HTTP/1.1 503", 0), 0u) << r4;
}

TEST_P(GatewayTest, OversizedAndMalformedHeadsAreAnswered) {
  const int c1 = ConnectLoopback(gw_->frontend_port());
  SendAll(c1, "GET /cam-1/x HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n");
  EXPECT_EQ(ReadHead(c1, nullptr).rfind("HTTP/1.1 431", 0), 0u);
  close(c1);
  const int c2 = ConnectLoopback(gw_->agent_plain_port());
  SendAll(c2, "GET /camtunnel/v1/control HTTP/1.1\r\nCamtunnel-Agent: Cam_1\r\n\r\n");
  EXPECT_EQ(ReadHead(c2, nullptr).rfind("HTTP/1.1 400", 0), 0u);
  close(c2);
}

class GatewayWithAdminTokenTest : public GatewayTest {
 protected:
  void Configure(GatewayConfig& config) override { config.admin_token = "s3cret-token-0123456789"; }
};

TEST_P(GatewayWithAdminTokenTest, AdminApiRequiresTheBearerToken) {
  EXPECT_EQ(AdminGet("/metrics").rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(AdminGet("/api/v1/agents", "Authorization: Bearer wrong\r\n").rfind("HTTP/1.1 401", 0),
            0u);
  EXPECT_EQ(AdminGet("/healthz").rfind("HTTP/1.1 200", 0), 0u);  // probes need no credentials
  const std::string ok = AdminGet("/metrics", "Authorization: Bearer s3cret-token-0123456789\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(ok.find("camtunnel_admin_unauthorized_total 2"), std::string::npos);
}

// Agents spread over the shards by hash(id); control, data and frontend connections land on any
// shard and are handed to the agent's home shard with the bytes already read, so a data
// connection that pipelines camera bytes behind its head arrives whole (the hand-over happens
// in the middle of the agent's pipeline).
TEST_P(GatewayTest, EveryConnectionMeetsOnItsAgentsHomeShard) {
  constexpr int kAgents = 12;
  std::vector<std::unique_ptr<FakeAgent>> agents;
  std::vector<int> per_shard(GetParam(), 0);
  for (int i = 0; i < kAgents; ++i) {
    const std::string id = "cam-" + std::to_string(i);
    agents.push_back(Connect(id));
    ASSERT_NE(agents.back(), nullptr);
    auto welcome = agents.back()->Next();
    ASSERT_TRUE(welcome && welcome->type() == static_cast<uint8_t>(proto::FrameType::kWelcome));
    ++per_shard[HomeShardOf(id, GetParam())];
  }
  for (int i = 0; i < kAgents; ++i) {
    FakeAgent& agent = *agents[static_cast<size_t>(i)];
    const int client = ConnectLoopback(gw_->frontend_port());
    const std::string up = "request " + std::to_string(i) + std::string(5000, 'u');
    SendAll(client, "CONNECT " + agent.agent + ":echo HTTP/1.1\r\nHost: x\r\n\r\n" + up);
    auto open = agent.Next();
    ASSERT_TRUE(open && open->type() == static_cast<uint8_t>(proto::FrameType::kOpen));
    const std::string early = "camera bytes pipelined behind the data head " + agent.agent;
    int status = 0;
    std::string at_camera;  // what came behind the gateway's 101
    const int data = OpenData(agent, *open, &status, "", nullptr, early, &at_camera);
    ASSERT_EQ(status, 101);
    shutdown(client, SHUT_WR);
    const std::string down(70000, static_cast<char>('a' + i));
    SendAll(data, down);
    shutdown(data, SHUT_WR);
    at_camera += ReadToEof(data);
    EXPECT_TRUE(at_camera == up) << at_camera.size() << " bytes, not " << up.size() << ": "
                                 << at_camera.substr(0, 40);
    const std::string at_client = ReadToEof(client);
    const std::string expected = "HTTP/1.1 200 Connection established\r\n\r\n" + early + down;
    EXPECT_TRUE(at_client == expected)
        << at_client.size() << " bytes, not " << expected.size() << ": " << at_client.substr(0, 80);
    close(client);
    close(data);

    // The admin API (on the first shard) answers from the agent's home shard.
    const std::string detail = AdminGet("/api/v1/agents/" + agent.agent);
    EXPECT_NE(detail.find("\"home_shard\":" + std::to_string(HomeShardOf(agent.agent, GetParam()))),
              std::string::npos)
        << detail;
  }
  for (unsigned s = 0; s < GetParam(); ++s) {
    EXPECT_EQ(Sample("camtunnel_shard_agents_connected{shard=\"" + std::to_string(s) + "\"}"),
              per_shard[s]);
  }
  EXPECT_EQ(Sample("camtunnel_agents_connected"), kAgents);
  const std::string list = AdminGet("/api/v1/agents?limit=5");
  EXPECT_NE(list.find("\"total\":12"), std::string::npos) << list;
  EXPECT_NE(list.find("\"next_cursor\":\"cam-2\""), std::string::npos) << list;  // 0,1,10,11,2
  if (GetParam() > 1) {
    // 12 control, 12 data and 12 frontend connections and 12 admin requests, each accepted by
    // the kernel on any of the shards: all landing at home by chance is (1/3)^48.
    EXPECT_GT(Sample("camtunnel_shard_handoffs_total{result=\"moved\"}"), 0);
  }
  EXPECT_EQ(Sample("camtunnel_shard_handoffs_total{result=\"queue_full\"}"), 0);
}

INSTANTIATE_TEST_SUITE_P(Shards, GatewayTest, ::testing::Values(1u, 3u));
INSTANTIATE_TEST_SUITE_P(Shards, GatewayWithAdminTokenTest, ::testing::Values(1u, 3u));

// Two shards, a queue of two tasks between them (the least a queue holds), and the second shard
// stuck: connections that the first shard accepts for agents homed on the second cannot all be
// handed over. The first two fill the queue and wait; the rest are refused at once with 503 (the
// agent backs off), counted, and nothing hangs. Once the second shard runs again, the one handed
// over and the connections waiting in its own backlog are served.
class GatewayQueueFullTest : public GatewayTest {
 protected:
  size_t QueueCapacity() const override { return 1; }
};

TEST_P(GatewayQueueFullTest, HandOffToABusyShardIsRefusedNotQueuedForever) {
  std::vector<std::string> homed_on_1;
  for (int i = 0; homed_on_1.size() < 32; ++i) {
    if (std::string id = "cam-" + std::to_string(i); HomeShardOf(id, 2) == 1) {
      homed_on_1.push_back(id);
    }
  }
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> stuck;
  gw_->group().shard(1).Post([&stuck, released] {
    stuck.set_value();
    released.wait();
  });
  stuck.get_future().wait();

  std::vector<int> fds;
  for (const std::string& id : homed_on_1) {
    const int fd = ConnectLoopback(gw_->agent_plain_port());
    proto::Nonce nonce;
    proto::RandomBytes(nonce);
    SendAll(fd, proto::BuildControlRequest("gw", id, Ref(), nonce));
    fds.push_back(fd);
  }
  // Shard 0 answers what it cannot hand over while shard 1 is still stuck: 503 at once.
  auto is_busy = [](std::string_view head) { return head.starts_with("HTTP/1.1 503"); };
  int busy_while_stuck = 0;
  for (int waited_ms = 0; busy_while_stuck == 0 && waited_ms < 5000; waited_ms += 50) {
    usleep(50 * 1000);
    for (int fd : fds) {
      char c[16];
      const ssize_t n = recv(fd, c, sizeof(c), MSG_PEEK | MSG_DONTWAIT);
      busy_while_stuck += n > 0 && is_busy(std::string_view(c, static_cast<size_t>(n))) ? 1 : 0;
    }
  }
  release.set_value();
  EXPECT_GE(busy_while_stuck, 1) << "32 connections, about half accepted by shard 0, 2 slots";
  int busy = 0;
  int accepted = 0;
  for (int fd : fds) {
    const std::string head = ReadHead(fd, nullptr);
    busy += is_busy(head) ? 1 : 0;
    accepted += head.starts_with("HTTP/1.1 101") ? 1 : 0;
    close(fd);
  }
  EXPECT_GE(busy, busy_while_stuck);
  EXPECT_EQ(accepted + busy, static_cast<int>(fds.size()));
  EXPECT_EQ(Sample("camtunnel_shard_handoffs_total{result=\"queue_full\"}"), busy);
  EXPECT_EQ(Sample("camtunnel_agent_connections_total{kind=\"control\",result=\"busy\"}"), busy);
}

INSTANTIATE_TEST_SUITE_P(Shards, GatewayQueueFullTest, ::testing::Values(2u));

}  // namespace
}  // namespace camtunnel::gateway
