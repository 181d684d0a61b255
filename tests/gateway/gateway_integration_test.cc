// The gateway in-process on a real shard, with a fake agent written against proto/ on blocking
// sockets: the whole path (upgrade, HELLO, OPEN, data proof, relay, half-close) and the attacks
// on it. The sanitizer build runs this, so every handler's teardown is checked for leaks and
// use-after-free.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <optional>
#include <string>
#include <thread>

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

class GatewayTest : public ::testing::Test {
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
    gw_ = std::make_unique<GatewayShard>(shard_, config, std::move(keys));
    std::promise<bool> started;
    loop_ = std::thread([&] {
      const bool ok = shard_.Init({}) == 0 && gw_->Start().ok();
      started.set_value(ok);
      if (ok) {
        shard_.Run();
      }
      live_after_shutdown_ = shard_.Shutdown(5000);
    });
    ASSERT_TRUE(started.get_future().get());
  }

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
    shard_.Stop();
    loop_.join();
    EXPECT_EQ(live_after_shutdown_, 0u);
    gw_.reset();
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
               const proto::Digest* key = nullptr) {
    const auto id = proto::ParseTunnelId(*open.Text(proto::Tag::kTunnelId));
    const auto nonce = *open.Bytes(proto::Tag::kNonce);
    const std::string who = agent.empty() ? as.agent : std::string(agent);
    const proto::Digest k = key != nullptr ? *key : as.key;
    const proto::DataProofInput in{who, &as.ref, *id, nonce, proto::Transport::kPlain, {}};
    const int fd = ConnectLoopback(gw_->agent_plain_port());
    SendAll(fd, proto::BuildDataRequest("gw", who, as.ref, *id, proto::DataProof(k, in)));
    proto::ResponseHead rh;
    const std::string head = ReadHead(fd, nullptr);
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

  runtime::Shard shard_;
  std::vector<uint8_t> streamer_key_;
  std::unique_ptr<GatewayShard> gw_;
  std::thread loop_;
  size_t live_after_shutdown_ = 1;
};

TEST_F(GatewayTest, RelaysConnectTunnelBothWaysWithHalfClose) {
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

TEST_F(GatewayTest, AnotherAgentCannotAnswerATunnel) {
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

TEST_F(GatewayTest, WrongHelloProofDoesNotEvictTheLiveSession) {
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

TEST_F(GatewayTest, ForgedFrameInPlainModeIsRejected) {
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

TEST_F(GatewayTest, FrontendAnswersUnknownOfflineAndTimeout) {
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

TEST_F(GatewayTest, OversizedAndMalformedHeadsAreAnswered) {
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

TEST_F(GatewayWithAdminTokenTest, AdminApiRequiresTheBearerToken) {
  EXPECT_EQ(AdminGet("/metrics").rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(AdminGet("/api/v1/agents", "Authorization: Bearer wrong\r\n").rfind("HTTP/1.1 401", 0),
            0u);
  EXPECT_EQ(AdminGet("/healthz").rfind("HTTP/1.1 200", 0), 0u);  // probes need no credentials
  const std::string ok = AdminGet("/metrics", "Authorization: Bearer s3cret-token-0123456789\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(ok.find("camtunnel_admin_unauthorized_total 2"), std::string::npos);
}

}  // namespace
}  // namespace camtunnel::gateway
