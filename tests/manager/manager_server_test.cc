// camtunnel-manager's server on a real shard and real TLS sockets (loopback), driven by a
// blocking OpenSSL client that plays the agent: activation over HTTPS, the manager link
// (upgrade, manager proof, HELLO, WELCOME, ASSIGN with sealed keys), the admin API, and every
// refusal with its status and counter. PlainLinkTest: the plain listener (section 10.2), where
// every frame is MACed and a tampered, replayed or unsealed one closes the link and is counted.
#include "manager/manager_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "manager/agent_link.h"
#include "manager/command_listener.h"
#include "proto/encoding.h"
#include "proto/manager_command.h"
#include "proto/manager_link.h"
#include "proto/upgrade.h"
#include "tests/agent/tls_test_util.h"
#include "tests/manager/test_store.h"
#include "tests/support/pg_cluster.h"

namespace camtunnel::manager {
namespace {

using ::camtunnel::test_support::PgCluster;
using nlohmann::json;

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// A blocking TLS client (no certificate verification: the test checks the manager proof,
// which is what an agent relies on beyond TLS).
class TlsClient {
 public:
  explicit TlsClient(uint16_t port) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    fd_ = ConnectLoopback(port);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    close(fd_);
  }
  bool ok() const { return ok_; }
  void Write(std::string_view s) { SSL_write(ssl_, s.data(), static_cast<int>(s.size())); }
  void Write(const std::vector<uint8_t>& b) {
    SSL_write(ssl_, b.data(), static_cast<int>(b.size()));
  }
  // Reads until the head is complete; body bytes (if any) stay in pending_.
  std::string ReadHead() {
    while (pending_.find("\r\n\r\n") == std::string::npos) {
      if (!ReadMore()) {
        break;
      }
    }
    const size_t end = pending_.find("\r\n\r\n");
    if (end == std::string::npos) {
      return pending_;
    }
    std::string head = pending_.substr(0, end + 4);
    pending_.erase(0, end + 4);
    return head;
  }
  std::string ReadToEof() {
    while (ReadMore()) {
    }
    return std::exchange(pending_, {});
  }
  // Next frame, or nullopt at EOF / timeout.
  std::optional<proto::Frame> ReadFrame() {
    for (;;) {
      std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(pending_.data()),
                                  pending_.size());
      proto::Frame frame;
      const size_t before = in.size();
      const proto::DecodeStatus st = decoder_.Decode(in, &frame);
      pending_.erase(0, before - in.size());
      if (st == proto::DecodeStatus::kFrame) {
        return frame;
      }
      if (st != proto::DecodeStatus::kNeedMore || !ReadMore()) {
        return std::nullopt;
      }
    }
  }
  std::vector<uint8_t> Exporter() {
    std::vector<uint8_t> out(proto::kExporterBytes);
    SSL_export_keying_material(ssl_, out.data(), out.size(), proto::kExporterLabel.data(),
                               proto::kExporterLabel.size(), nullptr, 0, 0);
    return out;
  }

 private:
  bool ReadMore() {
    char buf[16384];
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n <= 0) {
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool ok_ = false;
  std::string pending_;
  proto::FrameDecoder decoder_;
};

std::string Post(uint16_t port, std::string_view path, std::string_view body) {
  TlsClient c(port);
  std::string req = "POST " + std::string(path) +
                    " HTTP/1.1\r\nHost: m\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n\r\n" + std::string(body);
  c.Write(req);
  return c.ReadToEof();
}

std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

const std::vector<uint8_t> kMaster(32, 3);
const std::vector<uint8_t> kStreamerKey(32, 5);

class ManagerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/mgr-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    agent::test_util::TestCert cert;
    agent::test_util::MakeSelfSigned("localhost", &cert);
    FILE* f = std::fopen((dir_ + "/cert.pem").c_str(), "w");
    PEM_write_X509(f, cert.cert);
    std::fclose(f);
    f = std::fopen((dir_ + "/key.pem").c_str(), "w");
    PEM_write_PrivateKey(f, cert.key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    store_ = std::make_unique<test_util::TestStore>(shard_, StorePath());
    enroller_ = std::make_unique<LocalEnroller>(store_->store());
    activation_ =
        std::make_unique<ActivationService>(store_->store(), *enroller_,
                                            ActivationOptions{.factory_master = kMaster,
                                                              .operators = {"acme"},
                                                              .manager_url = "https://localhost:1",
                                                              .rate_burst = 50});
    pool_ = std::make_unique<StreamerPool>(
        std::vector<StreamerConfig>{
            {.url = "https://gw1:8443", .key_id = "k1", .streamer_key = kStreamerKey},
            {.url = "https://gw2:8443",
             .key_id = "k1",
             .streamer_key = kStreamerKey,
             .frontend_url = "rtsp://gw2:8554"}},
        KeyValidity());
    ManagerConfig config;
    config.listen = {"127.0.0.1:0"};
    config.admin_listen = {"127.0.0.1:0"};
    config.tls = {dir_ + "/cert.pem", dir_ + "/key.pem"};
    config.handshake_timeout_ms = 2000;
    Configure(config);
    server_ =
        std::make_unique<ManagerServer>(shard_, config, store_->store(), *activation_, *pool_);
    std::promise<bool> started;
    loop_ = std::thread([&] {
      const bool ok = shard_.Init({.buffer_count = 64}) == 0 && server_->Start().ok();
      started.set_value(ok);
      if (ok) {
        shard_.Run();
      }
      shard_.Shutdown(3000);
    });
    ASSERT_TRUE(started.get_future().get());
  }

  virtual uint64_t KeyValidity() const { return 3600; }
  virtual std::string StorePath() const { return ":memory:"; }
  virtual void Configure(ManagerConfig& /*config*/) {}

  void TearDown() override {
    shard_.Stop();
    loop_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Reads a counter on the shard's thread.
  template <typename F>
  auto OnShard(F f) {
    std::promise<decltype(f())> p;
    shard_.Post([&] { p.set_value(f()); });
    return p.get_future().get();
  }

  proto::AgentSecret Activate(const std::string& serial) {
    std::string r =
        Post(server_->port(), "/api/v1/activate",
             json{{"serial", serial},
                  {"factory_secret", proto::HexEncode(proto::FactorySecret(kMaster, serial))},
                  {"operator", "acme"}}
                 .dump());
    EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
    json j = json::parse(Body(r), nullptr, false);
    proto::AgentSecret s{};
    auto bytes = proto::HexDecode(j.value("agent_secret", ""));
    EXPECT_TRUE(bytes && bytes->size() == 32);
    if (bytes && bytes->size() == 32) {
      std::copy(bytes->begin(), bytes->end(), s.begin());
    }
    return s;
  }

  // Upgrade + manager proof check + HELLO with `hello_secret`'s proof.
  std::unique_ptr<TlsClient> Link(const std::string& id, const proto::AgentSecret& secret,
                                  const proto::AgentSecret& hello_secret, std::string* head_out,
                                  uint32_t capabilities = 0) {
    auto c = std::make_unique<TlsClient>(server_->port());
    proto::Nonce nonce{};
    proto::RandomBytes(nonce);
    c->Write(proto::BuildManagerRequest("localhost", id, nonce));
    std::string head_text = c->ReadHead();
    *head_out = head_text;
    proto::ResponseHead head;
    if (proto::ParseResponseHead(head_text, &head) != proto::HeadResult::kComplete ||
        head.status != 101) {
      return c;
    }
    auto accept = proto::ParseControlAccept(head);
    EXPECT_TRUE(accept);
    std::vector<uint8_t> exporter = c->Exporter();
    proto::ManagerProofInput in{.agent_id = id,
                                .agent_nonce = nonce,
                                .manager_nonce = accept->gateway_nonce,
                                .transport = proto::Transport::kTls,
                                .exporter = exporter};
    EXPECT_EQ(proto::ManagerProof(secret, in), accept->gateway_proof);
    proto::FrameBuilder hello(proto::FrameType::kHello);
    hello.Add(proto::Tag::kProof, proto::ManagerAgentProof(hello_secret, in))
        .AddText(proto::Tag::kVersion, "test-agent/1");
    if (capabilities != 0) {
      hello.AddU32(proto::Tag::kCapabilities, capabilities);
    }
    c->Write(hello.Finish());
    return c;
  }

  std::string AdminRequest(std::string_view method, std::string_view path,
                           std::string_view headers = "", std::string_view body = "") {
    return AdminRequestTo(server_->admin_port(), method, path, headers, body);
  }
  std::string AdminRequestTo(uint16_t port, std::string_view method, std::string_view path,
                             std::string_view headers = "", std::string_view body = "") {
    const int fd = ConnectLoopback(port);
    std::string req =
        std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" +
        std::string(headers) +
        (body.empty() ? "" : "Content-Length: " + std::to_string(body.size()) + "\r\n") + "\r\n" +
        std::string(body);
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[8192];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
  }

  std::string dir_;
  runtime::Shard shard_;
  std::unique_ptr<test_util::TestStore> store_;
  std::unique_ptr<LocalEnroller> enroller_;
  std::unique_ptr<ActivationService> activation_;
  std::unique_ptr<StreamerPool> pool_;
  std::unique_ptr<ManagerServer> server_;
  std::thread loop_;
};

TEST_F(ManagerServerTest, ActivatesOnceOverHttps) {
  Activate("sn-1");
  // Used on a manager link: from now on the secret is never issued again.
  ASSERT_TRUE(OnShard([&] { return store_->RecordStatus("sn-1", "linked", 1).ok(); }));
  const std::string factory = proto::HexEncode(proto::FactorySecret(kMaster, "sn-1"));
  std::string again =
      Post(server_->port(), "/api/v1/activate",
           json{{"serial", "sn-1"}, {"factory_secret", factory}, {"operator", "acme"}}.dump());
  EXPECT_NE(again.find("409 Conflict"), std::string::npos) << again;
  EXPECT_EQ(again.find("agent_secret"), std::string::npos);
}

TEST_F(ManagerServerTest, RejectsWrongFactorySecretOverHttps) {
  std::string r =
      Post(server_->port(), "/api/v1/activate",
           json{{"serial", "sn-2"},
                {"factory_secret", proto::HexEncode(proto::FactorySecret(kMaster, "sn-1"))},
                {"operator", "acme"}}
               .dump());
  EXPECT_NE(r.find("401 Unauthorized"), std::string::npos) << r;
  EXPECT_EQ(OnShard([&] { return activation_->counts().at("bad_factory_secret"); }), 1u);
}

TEST_F(ManagerServerTest, RefusesOversizedActivationBody) {
  std::string r = Post(server_->port(), "/api/v1/activate", std::string(5000, 'x'));
  EXPECT_NE(r.find("413"), std::string::npos) << r;
}

TEST_F(ManagerServerTest, LinkGetsWelcomeAndAssignWithSealedKeys) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_NE(head.find("101"), std::string::npos) << head;
  auto welcome = c->ReadFrame();
  ASSERT_TRUE(welcome);
  EXPECT_EQ(welcome->type(), static_cast<uint8_t>(proto::FrameType::kWelcome));
  auto assign = c->ReadFrame();
  ASSERT_TRUE(assign);
  ASSERT_EQ(assign->type(), static_cast<uint8_t>(proto::FrameType::kAssign));
  std::string error;
  auto list = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *assign, &error);
  ASSERT_TRUE(list) << error;
  ASSERT_EQ(list->size(), 2u);
  for (const auto& s : *list) {
    EXPECT_EQ(s.agent_key, proto::DeriveAgentKey(kStreamerKey, "sn-1", s.key_ref));
  }
  // STATUS is recorded; the admin API shows the agent linked with its status.
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "streamer=https://gw1:8443 state=connected");
  c->Write(status.Finish());
  proto::FrameBuilder ping(proto::FrameType::kPing);
  ping.AddU64(proto::Tag::kSequence, 1);
  c->Write(ping.Finish());
  ASSERT_TRUE(c->ReadFrame());  // PONG: the STATUS before it was handled
  std::string agents = AdminRequest("GET", "/api/v1/agents");
  EXPECT_NE(agents.find("\"linked\":true"), std::string::npos) << agents;
  EXPECT_NE(agents.find("state=connected"), std::string::npos) << agents;
}

// SIGHUP's reload: the operators, the Streamer list and the certificate change under a live
// link, which stays up and learns the new list; an agent whose Streamer left the list moves.
TEST_F(ManagerServerTest, ReloadKeepsLinksSendsTheNewListAndMovesOffARemovedStreamer) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());  // WELCOME
  ASSERT_TRUE(c->ReadFrame());  // ASSIGN
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "streamer=https://gw1:8443 state=connected");
  c->Write(status.Finish());
  proto::FrameBuilder ping(proto::FrameType::kPing);
  ping.AddU64(proto::Tag::kSequence, 1);
  c->Write(ping.Finish());
  ASSERT_TRUE(c->ReadFrame());  // PONG: the STATUS before it was handled
  auto activate_beta = [&] {
    return Post(server_->port(), "/api/v1/activate",
                json{{"serial", "sn-2"},
                     {"factory_secret", proto::HexEncode(proto::FactorySecret(kMaster, "sn-2"))},
                     {"operator", "beta"}}
                    .dump());
  };
  EXPECT_EQ(activate_beta().find("200 OK"), std::string::npos);

  // A certificate that does not load: nothing changes.
  std::filesystem::rename(dir_ + "/key.pem", dir_ + "/key.away");
  ReloadSet bad{.operators = {"acme", "beta"}};
  EXPECT_FALSE(OnShard([&] { return server_->Reload(bad).ok(); }));
  std::filesystem::rename(dir_ + "/key.away", dir_ + "/key.pem");
  EXPECT_EQ(activate_beta().find("200 OK"), std::string::npos);

  ReloadSet set{
      .streamers = {{.url = "https://gw2:8443", .key_id = "k1", .streamer_key = kStreamerKey},
                    {.url = "https://gw3:8443", .key_id = "k1", .streamer_key = kStreamerKey}},
      .operators = {"acme", "beta"},
      .config_digest = "reloaded"};
  ASSERT_TRUE(OnShard([&] { return server_->Reload(set).ok(); }));
  auto assign = c->ReadFrame();
  ASSERT_TRUE(assign);
  ASSERT_EQ(assign->type(), static_cast<uint8_t>(proto::FrameType::kAssign));
  std::string error;
  auto list = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *assign, &error);
  ASSERT_TRUE(list) << error;
  std::set<std::string> urls;
  for (const auto& s : *list) {
    urls.insert(s.url);
  }
  EXPECT_EQ(urls, (std::set<std::string>{"https://gw2:8443", "https://gw3:8443"}));
  auto moved = c->ReadFrame();
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->type(), static_cast<uint8_t>(proto::FrameType::kSwitch));
  EXPECT_NE(activate_beta().find("200 OK"), std::string::npos);
  const std::string metrics = AdminRequest("GET", "/metrics");
  EXPECT_NE(metrics.find("camtunnel_manager_reloads_total{result=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("camtunnel_manager_reloads_total{result=\"failed\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("sha256=\"reloaded\""), std::string::npos);
  // The link is the same one, still up.
  EXPECT_EQ(OnShard([&] { return server_->live_links(); }), 1u);
  EXPECT_EQ(OnShard([&] { return server_->counters().links_established; }), 1u);
}

TEST_F(ManagerServerTest, RefusesUnknownAgentOnTheLink) {
  proto::AgentSecret none{};
  std::string head;
  auto c = Link("nobody", none, none, &head);
  EXPECT_NE(head.find("401"), std::string::npos) << head;
  EXPECT_EQ(OnShard([&] { return server_->counters().link_unknown_agent; }), 1u);
}

TEST_F(ManagerServerTest, RefusesWrongHelloProof) {
  const proto::AgentSecret secret = Activate("sn-1");
  proto::AgentSecret wrong = secret;
  wrong[0] ^= 1;
  std::string head;
  auto c = Link("sn-1", secret, wrong, &head);
  auto error = c->ReadFrame();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type(), static_cast<uint8_t>(proto::FrameType::kError));
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), 1);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_proof; }), 1u);
  EXPECT_EQ(OnShard([&] { return server_->live_links(); }), 0u);
}

TEST_F(ManagerServerTest, ClosesLinkOnOversizedStatus) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());  // WELCOME
  ASSERT_TRUE(c->ReadFrame());  // ASSIGN
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, std::string(proto::kMaxStatusText + 1, 'x'));
  c->Write(status.Finish());
  auto error = c->ReadFrame();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), 3);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_malformed_frames; }), 1u);
}

TEST_F(ManagerServerTest, ClosesLinkOnOversizedFrame) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());
  ASSERT_TRUE(c->ReadFrame());
  const uint8_t huge[4] = {5, 0x01, 0x00, 0x00};  // STATUS announcing 64 KiB
  c->Write(std::vector<uint8_t>(huge, huge + 4));
  auto error = c->ReadFrame();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), 2);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_oversized_frames; }), 1u);
}

TEST_F(ManagerServerTest, DeactivateReachesTheAgentAndLocksItOut) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());
  ASSERT_TRUE(c->ReadFrame());
  std::string r = AdminRequest("POST", "/api/v1/agents/sn-1/deactivate");
  EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
  auto frame = c->ReadFrame();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->type(), static_cast<uint8_t>(proto::FrameType::kDeactivate));
  std::string again;
  auto c2 = Link("sn-1", secret, secret, &again);
  EXPECT_NE(again.find("401"), std::string::npos) << again;
}

TEST_F(ManagerServerTest, MoveSendsAssignWithChosenStreamerFirstThenSwitch) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());
  ASSERT_TRUE(c->ReadFrame());
  std::string r = AdminRequest("POST", "/api/v1/agents/sn-1/move?streamer=https://gw2:8443");
  EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
  auto assign = c->ReadFrame();
  ASSERT_TRUE(assign);
  std::string error;
  auto list = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *assign, &error);
  ASSERT_TRUE(list) << error;
  EXPECT_EQ(list->front().url, "https://gw2:8443");
  auto sw = c->ReadFrame();
  ASSERT_TRUE(sw);
  EXPECT_EQ(sw->type(), static_cast<uint8_t>(proto::FrameType::kSwitch));
  EXPECT_EQ(sw->Text(proto::Tag::kRedirect), "https://gw2:8443");
  EXPECT_NE(AdminRequest("POST", "/api/v1/agents/sn-1/move?streamer=https://evil").find("400"),
            std::string::npos);
}

TEST_F(ManagerServerTest, LookupNamesTheStreamerTheAgentReportsItselfOn) {
  const proto::AgentSecret secret = Activate("sn-1");
  EXPECT_NE(AdminRequest("GET", "/api/v1/lookup/sn-1").find("404"), std::string::npos);
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());  // WELCOME
  ASSERT_TRUE(c->ReadFrame());  // ASSIGN: gw1 first (equal loads, configured order)
  json j = json::parse(Body(AdminRequest("GET", "/api/v1/lookup/sn-1")), nullptr, false);
  EXPECT_EQ(j.value("streamer", ""), "https://gw1:8443") << j;
  EXPECT_EQ(j.value("source", ""), "assignment");
  EXPECT_TRUE(j["frontend"].is_null());
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "streamer=https://gw2:8443 state=connected");
  c->Write(status.Finish());
  for (int i = 0; i < 1000 && j.value("source", "") != "status"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // not acked; 20 s bounds a hang
    j = json::parse(Body(AdminRequest("GET", "/api/v1/lookup/sn-1")), nullptr, false);
  }
  EXPECT_EQ(j.value("streamer", ""), "https://gw2:8443") << j;
  EXPECT_EQ(j.value("frontend", ""), "rtsp://gw2:8554");
  EXPECT_TRUE(j.value("linked", false));
  // Kept in SQLite: the answer survives the link.
  c.reset();
  EXPECT_EQ((*store_->FindAgent("sn-1"))->located_url, "https://gw2:8443");
  EXPECT_NE(AdminRequest("GET", "/api/v1/lookup/NOT-CANONICAL").find("400"), std::string::npos);
}

TEST_F(ManagerServerTest, ClaimsAreRegisteredListedAndBindTheirSerial) {
  const std::string body = R"({"operator":"globex","token":"LABEL-7Q2X-99KD"})";
  std::string r = AdminRequest("PUT", "/api/v1/claims/sn-7", "", body);
  EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
  std::string list = AdminRequest("GET", "/api/v1/claims");
  EXPECT_NE(list.find("\"serial\":\"sn-7\""), std::string::npos) << list;
  EXPECT_EQ(list.find("LABEL"), std::string::npos) << list;
  EXPECT_EQ(list.find("hash"), std::string::npos) << list;
  const std::string factory = proto::HexEncode(proto::FactorySecret(kMaster, "sn-7"));
  std::string wrong =
      Post(server_->port(), "/api/v1/activate",
           json{{"serial", "sn-7"}, {"factory_secret", factory}, {"operator", "acme"}}.dump());
  EXPECT_NE(wrong.find("403"), std::string::npos) << wrong;
  std::string right =
      Post(server_->port(), "/api/v1/activate",
           json{{"serial", "sn-7"}, {"factory_secret", factory}, {"operator", "LABEL-7Q2X-99KD"}}
               .dump());
  EXPECT_NE(right.find("200 OK"), std::string::npos) << right;
  EXPECT_EQ((*store_->FindAgent("sn-7"))->operator_id, "globex");
  EXPECT_EQ(OnShard([&] { return activation_->counts().at("bad_claim_token"); }), 1u);
  // Refusals: bad bodies, bad serial, no length; then DELETE.
  EXPECT_NE(AdminRequest("PUT", "/api/v1/claims/sn-8", "", R"({"operator":"globex"})").find("400"),
            std::string::npos);
  EXPECT_NE(AdminRequest("PUT", "/api/v1/claims/sn-8", "", R"({"operator":"g","token":"short"})")
                .find("400"),
            std::string::npos);
  EXPECT_NE(AdminRequest("PUT", "/api/v1/claims/SN-8", "", body).find("400"), std::string::npos);
  EXPECT_NE(AdminRequest("PUT", "/api/v1/claims/sn-8").find("411"), std::string::npos);
  EXPECT_NE(AdminRequest("PUT", "/api/v1/claims/sn-8", "", std::string(2000, '{')).find("413"),
            std::string::npos);
  EXPECT_NE(AdminRequest("DELETE", "/api/v1/claims/sn-7").find("200 OK"), std::string::npos);
  EXPECT_NE(AdminRequest("DELETE", "/api/v1/claims/sn-7").find("404"), std::string::npos);
}

// Several managers (PROTOCOL.md 10.5): WELCOME lists them with the reconnect window, and a
// manager at its link capacity answers the next upgrade 503 at once.
class FleetManagerTest : public ManagerServerTest {
 protected:
  void Configure(ManagerConfig& config) override {
    config.manager_urls = {"https://m1:7443", "https://m2:7443"};
    config.reconnect_window_ms = 7000;
    config.max_links = 1;
  }
};

TEST_F(FleetManagerTest, WelcomeListsTheManagersAndAFullManagerSaysBusy) {
  const proto::AgentSecret s1 = Activate("sn-1");
  const proto::AgentSecret s2 = Activate("sn-2");
  std::string head;
  auto c = Link("sn-1", s1, s1, &head);
  auto welcome = c->ReadFrame();
  ASSERT_TRUE(welcome);
  ASSERT_EQ(welcome->type(), static_cast<uint8_t>(proto::FrameType::kWelcome));
  EXPECT_EQ(welcome->U32(proto::Tag::kReconnectWindowMs), 7000u);
  std::vector<std::string> managers;
  for (const proto::Field& f : welcome->fields()) {
    if (f.tag == static_cast<uint8_t>(proto::Tag::kManager)) {
      managers.emplace_back(reinterpret_cast<const char*>(f.value.data()), f.value.size());
    }
  }
  EXPECT_EQ(managers, (std::vector<std::string>{"https://m1:7443", "https://m2:7443"}));
  ASSERT_TRUE(c->ReadFrame());  // ASSIGN: the link is registered
  auto busy = Link("sn-2", s2, s2, &head);
  EXPECT_NE(head.find("503"), std::string::npos) << head;
  EXPECT_NE(head.find("Retry-After: 7"), std::string::npos) << head;
  EXPECT_EQ(OnShard([&] { return server_->counters().links_refused_busy; }), 1u);
}

// Commands as rows (PROTOCOL.md 10.6), with an agent that acknowledges them.
class CommandTest : public ManagerServerTest {
 protected:
  void Configure(ManagerConfig& config) override { config.command_ttl_ms = 1500; }

  // The next frame of `type` from the manager (skipping others).
  std::optional<proto::Frame> ReadUntil(TlsClient& c, proto::FrameType type) {
    for (int i = 0; i < 10; ++i) {
      auto f = c.ReadFrame();
      if (!f || f->type() == static_cast<uint8_t>(type)) {
        return f;
      }
    }
    return std::nullopt;
  }
  json Command(int64_t id) {
    return json::parse(Body(AdminRequest("GET", "/api/v1/commands/" + std::to_string(id))), nullptr,
                       false)["command"];
  }
  // Re-reads the row until `state` (a hang guard, not a timing assertion).
  bool WaitState(int64_t id, const std::string& state) {
    for (int i = 0; i < 500; ++i) {
      if (Command(id)["state"] == state) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
};

TEST_F(CommandTest, RestartIsDeliveredWithItsIdAndTheCallerGetsTheAcknowledgement) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head, proto::kCapCommandAck);
  ASSERT_TRUE(ReadUntil(*c, proto::FrameType::kAssign));
  // The caller waits for the outcome: answered once the agent's ACK is in.
  auto answer = std::async(std::launch::async, [&] {
    return AdminRequest("POST", "/api/v1/agents/sn-1/restart?wait_ms=20000");
  });
  auto restart = ReadUntil(*c, proto::FrameType::kRestart);
  ASSERT_TRUE(restart);
  const uint64_t id = proto::CommandIdOf(*restart);
  ASSERT_NE(id, 0u);
  // An ACK for an id this link was never sent is ignored.
  c->Write(proto::BuildAck(id + 100, "done").Finish());
  c->Write(proto::BuildAck(id, "done").Finish());
  const std::string r = answer.get();
  EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
  json body = json::parse(Body(r), nullptr, false);
  EXPECT_EQ(body["command"]["id"], id);
  EXPECT_EQ(body["command"]["state"], "acked");
  EXPECT_EQ(body["command"]["outcome"], "done");
  EXPECT_EQ(body["linked"], true);
  EXPECT_EQ(AdminRequest("GET", "/api/v1/commands/99999").find("404") != std::string::npos, true);
}

TEST_F(CommandTest, ACommandForAnOfflineAgentWaitsForItsLinkOrExpires) {
  const proto::AgentSecret secret = Activate("sn-1");
  Activate("sn-2");
  // sn-1 is offline: 202 at once, queued.
  std::string r = AdminRequest("POST", "/api/v1/agents/sn-1/restart");
  EXPECT_NE(r.find("202"), std::string::npos) << r;
  json body = json::parse(Body(r), nullptr, false);
  EXPECT_EQ(body["linked"], false);
  EXPECT_EQ(body["command"]["state"], "queued");
  const int64_t queued = body["command"]["id"];
  // sn-2 never links: its command expires with a clear failure.
  json never =
      json::parse(Body(AdminRequest("POST", "/api/v1/agents/sn-2/restart")), nullptr, false);
  const int64_t expires = never["command"]["id"];
  // sn-1 links: the queued RESTART reaches it.
  std::string head;
  auto c = Link("sn-1", secret, secret, &head, proto::kCapCommandAck);
  auto restart = ReadUntil(*c, proto::FrameType::kRestart);
  ASSERT_TRUE(restart);
  EXPECT_EQ(proto::CommandIdOf(*restart), static_cast<uint64_t>(queued));
  c->Write(proto::BuildAck(queued, "done").Finish());
  EXPECT_TRUE(WaitState(queued, "acked"));
  ASSERT_TRUE(WaitState(expires, "expired"));
  EXPECT_EQ(Command(expires)["outcome"], "agent not linked before the deadline");
  const std::string m = AdminRequest("GET", "/metrics");
  EXPECT_NE(m.find("camtunnel_manager_command_outcomes_total{outcome=\"expired\"} 1"),
            std::string::npos)
      << m;
}

// The link ends after RESTART was written but before its ACK: the row stays open and the next
// link of the agent gets the same id again (the agent acknowledges it as a duplicate).
TEST_F(CommandTest, AnUnacknowledgedCommandIsDeliveredAgainOnTheNextLink) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head, proto::kCapCommandAck);
  ASSERT_TRUE(ReadUntil(*c, proto::FrameType::kAssign));
  json body = json::parse(Body(AdminRequest("POST", "/api/v1/agents/sn-1/restart?wait_ms=0")),
                          nullptr, false);
  const int64_t id = body["command"]["id"];
  auto first = ReadUntil(*c, proto::FrameType::kRestart);
  ASSERT_TRUE(first);
  c.reset();  // gone without an ACK
  auto c2 = Link("sn-1", secret, secret, &head, proto::kCapCommandAck);
  auto again = ReadUntil(*c2, proto::FrameType::kRestart);
  ASSERT_TRUE(again);
  EXPECT_EQ(proto::CommandIdOf(*again), static_cast<uint64_t>(id));
  c2->Write(proto::BuildAck(id, "duplicate").Finish());
  EXPECT_TRUE(WaitState(id, "acked"));
  EXPECT_EQ(Command(id)["outcome"], "duplicate");
}

// A storm of new connections is admitted at --handshakes_per_second before any TLS work: the
// rest wait in the backlog, and every one is served in turn.
class PacedHandshakesTest : public ManagerServerTest {
 protected:
  void Configure(ManagerConfig& config) override {
    // Slow enough that clients started together always outrun it, even on a loaded machine.
    config.handshakes_per_second = 10;
    config.handshake_burst = 1;
  }
};

TEST_F(PacedHandshakesTest, AStormIsPacedAndEveryConnectionServed) {
  constexpr int kClients = 8;
  std::vector<std::future<std::string>> answers;
  answers.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      return Post(server_->port(), "/api/v1/activate", "{}");  // a bad request: answered 400
    }));
  }
  for (auto& a : answers) {
    const std::string r = a.get();
    EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
  }
  EXPECT_EQ(OnShard([&] { return server_->counters().connections_accepted; }),
            static_cast<uint64_t>(kClients));
  const std::string metrics = AdminRequest("GET", "/metrics");
  EXPECT_EQ(metrics.find("camtunnel_manager_accept_paced_total 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("camtunnel_manager_accept_paced_total "), std::string::npos);
}

// Two managers on one PostgreSQL database (PROTOCOL.md 10.6): a command recorded at the manager
// that does not hold the agent's link reaches the holder through PostgreSQL's notification. The
// holder's sweep is set beyond the test's length, so nothing else can deliver it.
class NotifiedCommandTest : public CommandTest {
 protected:
  void SetUp() override {
    if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    absl::StatusOr<std::string> db = PgCluster::SharedDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    conninfo_ = *db;
    ManagerServerTest::SetUp();  // the holder, m1
    ASSERT_FALSE(HasFatalFailure());
    StartOther();
  }

  // The holder's listener, as main.cc wires it.
  void Listen() {
    absl::StatusOr<std::unique_ptr<CommandListener>> listener =
        CommandListener::Start(shard_, conninfo_,
                               {.command = [this](int64_t id) { server_->commands().Notified(id); },
                                .listening = [this] { server_->commands().Rescan(); }});
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
    OnShard([&] {
      server_->AttachCommandListener(listener_.get());
      return true;
    });
    // Listening before any command is given: what is notified from now on is heard.
    for (int i = 0; i < 500 && !listener_->counters().up; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(listener_->counters().up);
  }

  // Links sn-1 to the holder and waits until the link has claimed its agent in the registry
  // (its epoch is known here): a command given after that reaches it only through the listener,
  // not through the claim's own offer of pending rows.
  std::unique_ptr<TlsClient> LinkToHolder() {
    const proto::AgentSecret secret = Activate("sn-1");
    std::string head;
    auto c = Link("sn-1", secret, secret, &head, proto::kCapCommandAck);
    EXPECT_TRUE(ReadUntil(*c, proto::FrameType::kAssign));
    bool claimed = false;
    for (int i = 0; i < 500 && !claimed; ++i) {
      claimed = OnShard([&] {
        AgentLink* link = server_->FindLink("sn-1");
        return link != nullptr && link->epoch() != 0;
      });
      if (!claimed) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    EXPECT_TRUE(claimed);
    return c;
  }

  // RESTART for sn-1 given to the other manager; its id.
  int64_t RestartAtTheOther() {
    json body = json::parse(
        Body(AdminRequestTo(other_->admin_port(), "POST", "/api/v1/agents/sn-1/restart?wait_ms=0")),
        nullptr, false);
    EXPECT_EQ(body["linked"], true);  // by the registry: m1 holds it
    return body["command"].value("id", int64_t{0});
  }

  // The holder delivers command `id` to `c`, which acknowledges it.
  void ExpectDeliveredAndAcked(TlsClient& c, int64_t id) {
    auto restart = ReadUntil(c, proto::FrameType::kRestart);
    ASSERT_TRUE(restart);
    EXPECT_EQ(proto::CommandIdOf(*restart), static_cast<uint64_t>(id));
    c.Write(proto::BuildAck(id, "done").Finish());
    ASSERT_TRUE(WaitState(id, "acked"));
    EXPECT_EQ(Command(id)["manager"], "m1");
  }

  // The manager that records the command, m2: a server of its own on the same database.
  void StartOther() {
    other_store_ = std::make_unique<test_util::TestStore>(other_shard_, conninfo_);
    other_enroller_ = std::make_unique<LocalEnroller>(other_store_->store());
    other_activation_ = std::make_unique<ActivationService>(
        other_store_->store(), *other_enroller_,
        ActivationOptions{.factory_master = kMaster, .operators = {"acme"}});
    other_pool_ = std::make_unique<StreamerPool>(
        std::vector<StreamerConfig>{
            {.url = "https://gw1:8443", .key_id = "k1", .streamer_key = kStreamerKey}},
        KeyValidity());
    ManagerConfig config;
    config.manager_id = "m2";
    config.listen = {"127.0.0.1:0"};
    config.admin_listen = {"127.0.0.1:0"};
    config.tls = {dir_ + "/cert.pem", dir_ + "/key.pem"};
    other_ = std::make_unique<ManagerServer>(other_shard_, config, other_store_->store(),
                                             *other_activation_, *other_pool_);
    std::promise<bool> started;
    other_loop_ = std::thread([&] {
      const bool ok = other_shard_.Init({.buffer_count = 64}) == 0 && other_->Start().ok();
      started.set_value(ok);
      if (ok) {
        other_shard_.Run();
      }
      other_shard_.Shutdown(3000);
    });
    ASSERT_TRUE(started.get_future().get());
  }

  void TearDown() override {
    if (other_loop_.joinable()) {
      other_shard_.Stop();
      other_loop_.join();
    }
    other_.reset();
    // On the holder's shard: no notification handler runs while it goes.
    if (listener_ != nullptr) {
      OnShard([&] {
        listener_.reset();
        return true;
      });
    }
    if (loop_.joinable()) {
      ManagerServerTest::TearDown();
    }
  }

  std::string StorePath() const override { return conninfo_; }
  void Configure(ManagerConfig& config) override {
    config.manager_id = "m1";
    config.command_sweep_ms = uint64_t{3600} * 1000;
  }

  std::string conninfo_;
  std::unique_ptr<CommandListener> listener_;
  runtime::Shard other_shard_;
  std::unique_ptr<test_util::TestStore> other_store_;
  std::unique_ptr<LocalEnroller> other_enroller_;
  std::unique_ptr<ActivationService> other_activation_;
  std::unique_ptr<StreamerPool> other_pool_;
  std::unique_ptr<ManagerServer> other_;
  std::thread other_loop_;
};

TEST_F(NotifiedCommandTest, ACommandGivenToTheOtherManagerIsDeliveredByTheHolder) {
  ASSERT_NO_FATAL_FAILURE(Listen());
  std::unique_ptr<TlsClient> c = LinkToHolder();
  const int64_t id = RestartAtTheOther();
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAndAcked(*c, id));
  const std::string m = AdminRequest("GET", "/metrics");
  EXPECT_NE(m.find("camtunnel_manager_command_listener_up 1"), std::string::npos) << m;
  EXPECT_EQ(m.find("camtunnel_manager_command_notifications_total 0"), std::string::npos) << m;
  EXPECT_NE(m.find("camtunnel_manager_command_notifications_malformed_total 0"), std::string::npos)
      << m;
}

// A notification sent while the holder was not listening is lost; listening (again) rescans.
TEST_F(NotifiedCommandTest, ACommandGivenWhileTheHolderWasNotListeningIsFoundByTheRescan) {
  std::unique_ptr<TlsClient> c = LinkToHolder();
  const int64_t id = RestartAtTheOther();
  ASSERT_NO_FATAL_FAILURE(Listen());
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAndAcked(*c, id));
}

class ShortKeysTest : public ManagerServerTest {
 protected:
  uint64_t KeyValidity() const override { return 2; }
};

TEST_F(ShortKeysTest, RefreshesKeysBeforeTheyExpire) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_TRUE(c->ReadFrame());  // WELCOME
  auto first = c->ReadFrame();
  ASSERT_TRUE(first);
  std::string error;
  auto list1 = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *first, &error);
  ASSERT_TRUE(list1) << error;
  // Answer the manager's PINGs until the next ASSIGN (at 3/4 of the key's life, within 4 s).
  for (int i = 0; i < 20; ++i) {
    auto f = c->ReadFrame();
    ASSERT_TRUE(f);
    if (f->type() == static_cast<uint8_t>(proto::FrameType::kPing)) {
      proto::FrameBuilder pong(proto::FrameType::kPong);
      pong.AddU64(proto::Tag::kSequence, f->U64(proto::Tag::kSequence).value_or(0));
      c->Write(pong.Finish());
      continue;
    }
    ASSERT_EQ(f->type(), static_cast<uint8_t>(proto::FrameType::kAssign));
    auto list2 = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *f, &error);
    ASSERT_TRUE(list2) << error;
    EXPECT_GT(list2->front().key_ref.expiry, list1->front().key_ref.expiry);
    return;
  }
  FAIL() << "no second ASSIGN";
}

class AdminTokenTest : public ManagerServerTest {
 protected:
  void Configure(ManagerConfig& config) override { config.admin_token = "0123456789abcdef"; }
};

TEST_F(AdminTokenTest, RequiresTheBearerTokenExceptForHealthz) {
  EXPECT_NE(AdminRequest("GET", "/api/v1/agents").find("401"), std::string::npos);
  EXPECT_NE(AdminRequest("GET", "/api/v1/agents", "Authorization: Bearer wrong\r\n").find("401"),
            std::string::npos);
  EXPECT_NE(AdminRequest("GET", "/api/v1/agents", "Authorization: Bearer 0123456789abcdef\r\n")
                .find("200 OK"),
            std::string::npos);
  EXPECT_NE(AdminRequest("GET", "/healthz").find("200 OK"), std::string::npos);
  EXPECT_EQ(OnShard([&] { return server_->counters().admin_unauthorized; }), 2u);
}

TEST_F(ManagerServerTest, MetricsNameEveryRefusal) {
  std::string m = AdminRequest("GET", "/metrics");
  EXPECT_NE(m.find("camtunnel_manager_link_errors_total{reason=\"bad_proof\"} 0"),
            std::string::npos)
      << m;
}

// A state database that refuses writes (its audit and activation tables gone, as in a damaged
// file) costs the record of an attempt, never the answer: each failed write is logged and
// counted.
class BrokenStoreTest : public ManagerServerTest {
 protected:
  std::string StorePath() const override { return dir_ + "/state.db"; }
};

TEST_F(BrokenStoreTest, FailedWritesAreCountedAndExported) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(StorePath().c_str(), &db), SQLITE_OK);
  // The running manager writes too (its leader lease): wait for it rather than fail busy.
  sqlite3_busy_timeout(db, 10000);
  ASSERT_EQ(
      sqlite3_exec(db, "DROP TABLE audit; DROP TABLE activations;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  Activate("sn-1");  // still answered 200 with a secret
  // The attempt and its audit entry are one write, made after the answer: wait for its outcome.
  std::string m;
  for (int i = 0; i < 500; ++i) {
    m = AdminRequest("GET", "/metrics");
    if (m.find("camtunnel_manager_store_write_errors_total{op=\"activation_attempt\"} 1\n") !=
        std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(m.find("camtunnel_manager_store_write_errors_total{op=\"activation_attempt\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_EQ(OnShard([&] {
              const auto& errors = store_->store().write_errors();
              auto it = errors.find("activation_attempt");
              return it == errors.end() ? uint64_t{0} : it->second;
            }),
            1u);
}

// A blocking plain-TCP client for the plain listener; frames sealed and opened once Seal() is
// given the session key.
class PlainClient {
 public:
  explicit PlainClient(uint16_t port) : fd_(ConnectLoopback(port)) {}
  ~PlainClient() { close(fd_); }
  void Write(std::string_view s) { send(fd_, s.data(), s.size(), MSG_NOSIGNAL); }
  void Write(const std::vector<uint8_t>& b) { send(fd_, b.data(), b.size(), MSG_NOSIGNAL); }
  void SetSessionKey(const proto::Digest& key) {
    sealer_.emplace(key, proto::Direction::kAgentToGateway);
    opener_.emplace(key, proto::Direction::kGatewayToAgent);
  }
  std::vector<uint8_t> Seal(proto::FrameBuilder& frame) { return sealer_->Seal(frame); }
  std::string ReadHead() {
    while (pending_.find("\r\n\r\n") == std::string::npos && ReadMore()) {
    }
    const size_t end = pending_.find("\r\n\r\n");
    if (end == std::string::npos) {
      return std::exchange(pending_, {});
    }
    std::string head = pending_.substr(0, end + 4);
    pending_.erase(0, end + 4);
    return head;
  }
  std::string ReadToEof() {
    while (ReadMore()) {
    }
    return std::exchange(pending_, {});
  }
  // Next frame with its MAC checked and stripped (`mac_ok` false if it did not verify);
  // nullopt at EOF or timeout.
  std::optional<proto::Frame> ReadFrame(bool* mac_ok = nullptr) {
    for (;;) {
      std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(pending_.data()),
                                  pending_.size());
      proto::Frame frame;
      const size_t before = in.size();
      const proto::DecodeStatus st = decoder_.Decode(in, &frame);
      pending_.erase(0, before - in.size());
      if (st == proto::DecodeStatus::kFrame) {
        const bool ok = opener_ && opener_->Open(frame);
        if (mac_ok != nullptr) {
          *mac_ok = ok;  // the caller expects a frame it cannot open
        } else {
          EXPECT_TRUE(ok) << "manager frame without a valid MAC";
        }
        return frame;
      }
      if (st != proto::DecodeStatus::kNeedMore || !ReadMore()) {
        return std::nullopt;
      }
    }
  }
  // True when the manager closed (EOF) with nothing more to read.
  bool Closed() { return !ReadMore() && pending_.empty(); }

 private:
  bool ReadMore() {
    char buf[16384];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  std::string pending_;
  proto::FrameDecoder decoder_;
  std::optional<proto::FrameSealer> sealer_;
  std::optional<proto::FrameOpener> opener_;
};

class PlainLinkTest : public ManagerServerTest {
 protected:
  void Configure(ManagerConfig& config) override { config.plain_listen = {"127.0.0.1:0"}; }

  // Upgrade on the plain listener, the plain-mode manager proof checked, HELLO sealed with the
  // proof under `hello_secret`.
  std::unique_ptr<PlainClient> PlainLink(const std::string& id, const proto::AgentSecret& secret,
                                         const proto::AgentSecret& hello_secret,
                                         std::string* head_out) {
    auto c = std::make_unique<PlainClient>(server_->plain_port());
    proto::Nonce nonce{};
    proto::RandomBytes(nonce);
    c->Write(proto::BuildManagerRequest("localhost", id, nonce));
    *head_out = c->ReadHead();
    proto::ResponseHead head;
    if (proto::ParseResponseHead(*head_out, &head) != proto::HeadResult::kComplete ||
        head.status != 101) {
      return c;
    }
    auto accept = proto::ParseControlAccept(head);
    EXPECT_TRUE(accept);
    proto::ManagerProofInput in{.agent_id = id,
                                .agent_nonce = nonce,
                                .manager_nonce = accept->gateway_nonce,
                                .transport = proto::Transport::kPlain,
                                .exporter = {}};
    EXPECT_EQ(proto::ManagerProof(secret, in), accept->gateway_proof);
    c->SetSessionKey(proto::ManagerSessionKey(hello_secret, nonce, accept->gateway_nonce));
    proto::FrameBuilder hello(proto::FrameType::kHello);
    hello.Add(proto::Tag::kProof, proto::ManagerAgentProof(hello_secret, in))
        .AddU32(proto::Tag::kCapabilities, proto::kCapPlainFrameMac)
        .AddText(proto::Tag::kVersion, "test-agent/1");
    c->Write(c->Seal(hello));
    return c;
  }

  // A linked plain client past WELCOME and ASSIGN.
  std::unique_ptr<PlainClient> Linked(const proto::AgentSecret& secret) {
    std::string head;
    auto c = PlainLink("sn-1", secret, secret, &head);
    EXPECT_NE(head.find("101"), std::string::npos) << head;
    auto welcome = c->ReadFrame();
    EXPECT_TRUE(welcome && welcome->type() == static_cast<uint8_t>(proto::FrameType::kWelcome));
    auto assign = c->ReadFrame();
    EXPECT_TRUE(assign && assign->type() == static_cast<uint8_t>(proto::FrameType::kAssign));
    return c;
  }
};

TEST_F(ManagerServerTest, HasNoPlainListenerUnlessConfigured) {
  EXPECT_EQ(server_->plain_port(), 0);
}

TEST_F(PlainLinkTest, PlainLinkMacsEveryFrameAndSealsTheAssignedKeys) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = PlainLink("sn-1", secret, secret, &head);
  ASSERT_NE(head.find("101"), std::string::npos) << head;
  auto welcome = c->ReadFrame();
  ASSERT_TRUE(welcome);
  ASSERT_EQ(welcome->type(), static_cast<uint8_t>(proto::FrameType::kWelcome));
  EXPECT_EQ(welcome->U32(proto::Tag::kCapabilities).value_or(0) & proto::kCapPlainFrameMac,
            proto::kCapPlainFrameMac);
  auto assign = c->ReadFrame();
  ASSERT_TRUE(assign);
  std::string error;
  auto list = proto::ParseAssign(proto::KeySealKey(secret, "sn-1"), "sn-1", *assign, &error);
  ASSERT_TRUE(list) << error;
  EXPECT_EQ(list->front().agent_key,
            proto::DeriveAgentKey(kStreamerKey, "sn-1", list->front().key_ref));
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "streamer=https://gw1:8443 state=connected");
  c->Write(c->Seal(status));
  proto::FrameBuilder ping(proto::FrameType::kPing);
  ping.AddU64(proto::Tag::kSequence, 9);
  c->Write(c->Seal(ping));
  auto pong = c->ReadFrame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->type(), static_cast<uint8_t>(proto::FrameType::kPong));
  EXPECT_EQ(pong->U64(proto::Tag::kSequence), 9u);
  std::string agents = AdminRequest("GET", "/api/v1/agents");
  EXPECT_NE(agents.find("\"transport\":\"plain\""), std::string::npos) << agents;
  EXPECT_NE(agents.find("state=connected"), std::string::npos) << agents;
  EXPECT_NE(AdminRequest("GET", "/metrics").find("camtunnel_manager_plain_links 1"),
            std::string::npos);
}

TEST_F(PlainLinkTest, TamperedFrameClosesTheLinkAndIsCounted) {
  const proto::AgentSecret secret = Activate("sn-1");
  auto c = Linked(secret);
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "streamer=https://gw1:8443 state=connected");
  std::vector<uint8_t> bytes = c->Seal(status);
  bytes[10] ^= 0x20;  // one bit of the text: "streamer=" becomes "strEamer="
  c->Write(bytes);
  auto error = c->ReadFrame();  // the ERROR itself is MACed (manager sequence 2)
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type(), static_cast<uint8_t>(proto::FrameType::kError));
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_macs; }), 1u);
  EXPECT_EQ(OnShard([&] { return server_->counters().status_received; }), 0u);
  EXPECT_NE(AdminRequest("GET", "/metrics")
                .find("camtunnel_manager_link_errors_total{reason=\"bad_mac\"} 1"),
            std::string::npos);
}

TEST_F(PlainLinkTest, ReplayedFrameClosesTheLink) {
  const proto::AgentSecret secret = Activate("sn-1");
  auto c = Linked(secret);
  proto::FrameBuilder ping(proto::FrameType::kPing);
  ping.AddU64(proto::Tag::kSequence, 1);
  const std::vector<uint8_t> recorded = c->Seal(ping);
  c->Write(recorded);
  auto pong = c->ReadFrame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->type(), static_cast<uint8_t>(proto::FrameType::kPong));
  c->Write(recorded);  // the same bytes again: a MAC for sequence 1 where 2 is due
  auto error = c->ReadFrame();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_macs; }), 1u);
}

TEST_F(PlainLinkTest, UnsealedFrameClosesTheLink) {
  const proto::AgentSecret secret = Activate("sn-1");
  auto c = Linked(secret);
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, "injected");
  c->Write(status.Finish());
  auto error = c->ReadFrame();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_macs; }), 1u);
}

TEST_F(PlainLinkTest, AgentReportOfABadMacIsCounted) {
  const proto::AgentSecret secret = Activate("sn-1");
  auto c = Linked(secret);
  proto::FrameBuilder error(proto::FrameType::kError);
  error.AddU16(proto::Tag::kErrorCode, static_cast<uint16_t>(proto::ErrorCode::kBadMac))
      .AddText(proto::Tag::kText, "bad MAC on SWITCH from the manager");
  c->Write(c->Seal(error));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(OnShard([&] { return server_->counters().link_agent_bad_macs; }), 1u);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_macs; }), 0u);
}

TEST_F(PlainLinkTest, WrongHelloProofIsBadProofNotBadMac) {
  const proto::AgentSecret secret = Activate("sn-1");
  proto::AgentSecret wrong = secret;
  wrong[0] ^= 1;
  std::string head;
  // HELLO sealed and proven under the wrong secret: the manager cannot tell the two apart, and
  // "bad proof" is what the agent needs to hear. Its ERROR is sealed under the real session key,
  // which this client does not hold.
  auto c = PlainLink("sn-1", secret, wrong, &head);
  bool mac_ok = true;
  auto error = c->ReadFrame(&mac_ok);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->U16(proto::Tag::kErrorCode), static_cast<uint16_t>(proto::ErrorCode::kBadProof));
  EXPECT_FALSE(mac_ok);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_proof; }), 1u);
  EXPECT_EQ(OnShard([&] { return server_->counters().link_bad_macs; }), 0u);
  EXPECT_EQ(OnShard([&] { return server_->live_links(); }), 0u);
}

TEST_F(PlainLinkTest, ActivationOnThePlainListenerIsRefused) {
  const std::string factory = proto::HexEncode(proto::FactorySecret(kMaster, "sn-9"));
  const std::string body =
      json{{"serial", "sn-9"}, {"factory_secret", factory}, {"operator", "acme"}}.dump();
  PlainClient c(server_->plain_port());
  c.Write("POST /api/v1/activate HTTP/1.1\r\nHost: m\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
  const std::string r = c.ReadToEof();
  EXPECT_NE(r.find("403"), std::string::npos) << r;
  EXPECT_NE(r.find("HTTPS only"), std::string::npos) << r;
  EXPECT_EQ(r.find("agent_secret"), std::string::npos) << r;
  EXPECT_EQ(OnShard([&] { return server_->counters().plain_activations_refused; }), 1u);
  EXPECT_FALSE(store_->FindAgent("sn-9")->has_value());
}

TEST_F(PlainLinkTest, TlsLinksStillWorkBesideThePlainListener) {
  const proto::AgentSecret secret = Activate("sn-1");
  std::string head;
  auto c = Link("sn-1", secret, secret, &head);
  ASSERT_NE(head.find("101"), std::string::npos) << head;
  auto welcome = c->ReadFrame();
  ASSERT_TRUE(welcome);
  EXPECT_EQ(welcome->type(), static_cast<uint8_t>(proto::FrameType::kWelcome));
  EXPECT_FALSE(welcome->Bytes(proto::Tag::kMac).has_value());
  std::string agents = AdminRequest("GET", "/api/v1/agents");
  EXPECT_NE(agents.find("\"transport\":\"tls\""), std::string::npos) << agents;
}

}  // namespace
}  // namespace camtunnel::manager
