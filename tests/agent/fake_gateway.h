// A tiny gateway for in-process agent tests: real loopback sockets, blocking I/O with poll(2)
// deadlines, and the proto/ library for heads, proofs and (plain-mode) sealed frames. It runs on
// the test thread while the agent's event loop runs on its own thread.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/event_loop.h"
#include "agent/tls_transport.h"
#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"

namespace camtunnel::agent::test_util {

inline int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A listening socket on 127.0.0.1, port chosen by the kernel.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd_); }
  uint16_t port() const { return port_; }
  // The next connection, or -1 after `timeout_ms`.
  int Accept(int timeout_ms = 5000) {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1) {
      return -1;
    }
    return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A port on which nothing listens (bound, then released).
inline uint16_t UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// One accepted socket (plain, or TLS after StartTls), with helpers that never block past a
// deadline.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {}
  ~Peer() {
    SSL_free(ssl_);
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }

  // Server-side TLS handshake (blocking, bounded by a receive timeout).
  bool StartTls(SSL_CTX* ctx) {
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssl_ = SSL_new(ctx);
    SSL_set_fd(ssl_, fd_);
    return SSL_accept(ssl_) == 1;
  }
  std::vector<uint8_t> Exporter() const {
    if (ssl_ == nullptr) {
      return {};
    }
    std::vector<uint8_t> out(proto::kExporterBytes);
    EXPECT_EQ(SSL_export_keying_material(ssl_, out.data(), out.size(), proto::kExporterLabel.data(),
                                         proto::kExporterLabel.size(), nullptr, 0, 0),
              1);
    return out;
  }
  // Half-close: TLS close_notify (if TLS) and FIN.
  void ShutdownWrite() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_);
    }
    shutdown(fd_, SHUT_WR);
  }

  bool SendAll(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                                  : send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool SendAll(std::span<const uint8_t> bytes) {
    return SendAll(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  // Appends what arrives to `buffered_`. >0 bytes, 0 on EOF, -errno on error, -ETIMEDOUT.
  ssize_t ReadSome(int timeout_ms) {
    pollfd pfd{fd_, POLLIN, 0};
    if ((ssl_ == nullptr || SSL_pending(ssl_) == 0) && poll(&pfd, 1, timeout_ms) != 1) {
      return -ETIMEDOUT;
    }
    char buf[65536];
    ssize_t n;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int r = SSL_read(ssl_, buf, sizeof(buf));
      int err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ) {
        return -ETIMEDOUT;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        return 0;  // close_notify: a clean end
      }
      n = err == SSL_ERROR_NONE ? r : -1;
      errno = n < 0 && errno == 0 ? ECONNRESET : errno;
    } else {
      n = recv(fd_, buf, sizeof(buf), 0);
    }
    if (n < 0) {
      return -errno;
    }
    buffered_.append(buf, static_cast<size_t>(n));
    return n;
  }

  // Reads until `buffered_` holds at least `size` bytes; false on EOF, error or timeout.
  bool ReadAtLeast(size_t size, int timeout_ms = 5000) {
    int64_t deadline = SteadyMs() + timeout_ms;
    while (buffered_.size() < size) {
      int64_t left = deadline - SteadyMs();
      if (left <= 0 || ReadSome(static_cast<int>(left)) <= 0) {
        return false;
      }
    }
    return true;
  }

  std::string Take(size_t n) {
    std::string out = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return out;
  }
  std::string& buffered() { return buffered_; }

  // Reads an HTTP head (through the blank line); the rest stays buffered.
  std::optional<std::string> ReadHead(int timeout_ms = 5000) {
    int64_t deadline = SteadyMs() + timeout_ms;
    for (;;) {
      size_t end = buffered_.find("\r\n\r\n");
      if (end != std::string::npos) {
        return Take(end + 4);
      }
      int64_t left = deadline - SteadyMs();
      if (left <= 0 || ReadSome(static_cast<int>(left)) <= 0) {
        return std::nullopt;
      }
    }
  }

  // Waits for the peer to close (EOF or reset). Bytes that arrive first are kept in buffered().
  // Returns 0 for EOF, the errno for a reset, or -1 on timeout.
  int WaitClosed(int timeout_ms = 5000) {
    int64_t deadline = SteadyMs() + timeout_ms;
    for (;;) {
      int64_t left = deadline - SteadyMs();
      if (left <= 0) {
        return -1;
      }
      ssize_t n = ReadSome(static_cast<int>(left));
      if (n == 0) {
        return 0;
      }
      if (n == -ETIMEDOUT) {
        return -1;
      }
      if (n < 0) {
        return static_cast<int>(-n);
      }
    }
  }

  // Frames (after the upgrade). With a session key set, frames are sealed and opened.
  void SetSessionKey(const proto::Digest& key) {
    sealer_.emplace(key, proto::Direction::kGatewayToAgent);
    opener_.emplace(key, proto::Direction::kAgentToGateway);
  }
  void SendFrame(proto::FrameBuilder& frame) {
    std::vector<uint8_t> bytes = sealer_ ? sealer_->Seal(frame) : frame.Finish();
    EXPECT_TRUE(SendAll(bytes));
  }
  // The next frame from the agent, MAC checked (a bad MAC fails the test); nullopt on timeout
  // or close.
  std::optional<proto::Frame> ReadFrame(int timeout_ms = 5000) {
    int64_t deadline = SteadyMs() + timeout_ms;
    for (;;) {
      if (!buffered_.empty()) {
        std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(buffered_.data()),
                                    buffered_.size());
        proto::Frame frame;
        proto::DecodeStatus st = decoder_.Decode(in, &frame);
        buffered_.erase(0, buffered_.size() - in.size());
        EXPECT_NE(st, proto::DecodeStatus::kTooLarge);
        if (st == proto::DecodeStatus::kFrame) {
          if (opener_) {
            EXPECT_TRUE(opener_->Open(frame)) << "agent frame with a bad MAC";
          }
          EXPECT_TRUE(frame.Valid());
          return frame;
        }
      }
      int64_t left = deadline - SteadyMs();
      if (left <= 0 || ReadSome(static_cast<int>(left)) <= 0) {
        return std::nullopt;
      }
    }
  }
  // The next frame of `type`, skipping others (e.g. heartbeat PINGs); nullopt on timeout.
  std::optional<proto::Frame> ReadFrameOfType(proto::FrameType type, int timeout_ms = 5000) {
    int64_t deadline = SteadyMs() + timeout_ms;
    for (;;) {
      int64_t left = deadline - SteadyMs();
      auto frame = ReadFrame(static_cast<int>(std::max<int64_t>(left, 0)));
      if (!frame || frame->type() == static_cast<uint8_t>(type)) {
        return frame;
      }
    }
  }

 private:
  int fd_;
  SSL* ssl_ = nullptr;
  std::string buffered_;
  proto::FrameDecoder decoder_;
  std::optional<proto::FrameSealer> sealer_;
  std::optional<proto::FrameOpener> opener_;
};

// Runs an Agent on its own thread for the duration of a test.
class AgentRunner {
 public:
  AgentRunner(const Config& config, AgentOptions options,
              std::unique_ptr<TransportFactory> factory = MakePlainTransportFactory())
      : agent_(loop_, config, std::move(factory), std::move(options)) {
    signal(SIGPIPE, SIG_IGN);
    thread_ = std::thread([this] {
      agent_.Start();
      loop_.Run();
      agent_.Shutdown();
    });
  }
  ~AgentRunner() {
    loop_.RequestStop();
    thread_.join();
    // After Shutdown() nothing may be left behind: only the loop's own wake-up pipe.
    EXPECT_EQ(loop_.watch_count(), 1u);
    EXPECT_EQ(loop_.timer_count(), 0u);
  }

 private:
  EventLoop loop_;
  Agent agent_;
  std::thread thread_;
};

// The gateway's side of a control handshake, with the agent's nonce and its upgrade request.
struct ControlPeer {
  std::unique_ptr<Peer> peer;
  proto::UpgradeRequest request;
  proto::Nonce gateway_nonce{};
};

// Base fixture: a fake gateway listener, a plain-mode agent configuration, and helpers for
// the gateway's side of the control handshake.
class AgentTest : public ::testing::Test {
 public:
  static constexpr char kTunnelIdText[] = "00a3f09c11d2e4b7";

 protected:
  void SetUp() override {
    for (size_t i = 0; i < key_.size(); ++i) {
      key_[i] = static_cast<uint8_t>(0x60 + i);
    }
    std::string error;
    ASSERT_TRUE(ParseGatewayUrl("http://127.0.0.1:" + std::to_string(gateway_.port()),
                                &config_.gateway, &error))
        << error;
    config_.agent_id = "cam-42";
    config_.key_ref = *proto::ParseKeyRef("k1.1767225600");
    config_.agent_key = key_;
    config_.services = {*proto::ParseServiceEntry("rtsp=127.0.0.1:554"),
                        *proto::ParseServiceEntry("http=127.0.0.1:80")};
    options_.backoff = {.base_ms = 50, .cap_ms = 200};
    options_.seed = 1;
  }
  void TearDown() override {
    runner_.reset();
    SSL_CTX_free(server_tls_);  // peers still holding SSL objects keep their own reference
  }

  void StartAgent(std::unique_ptr<TransportFactory> factory = MakePlainTransportFactory()) {
    runner_ = std::make_unique<AgentRunner>(config_, options_, std::move(factory));
  }

  // Accepts the next connection; with `server_tls_` set, completes a TLS handshake on it.
  std::unique_ptr<Peer> AcceptPeer(Listener& listener, int timeout_ms = 5000) {
    auto peer = std::make_unique<Peer>(listener.Accept(timeout_ms));
    if (peer->fd() >= 0 && server_tls_ != nullptr) {
      EXPECT_TRUE(peer->StartTls(server_tls_)) << "TLS handshake with the agent failed";
    }
    return peer;
  }

  // Accepts the agent's next connection and checks that it is a control upgrade for our agent.
  ControlPeer AcceptControl(int timeout_ms = 5000) {
    ControlPeer control;
    control.peer = AcceptPeer(gateway_, timeout_ms);
    EXPECT_GE(control.peer->fd(), 0) << "the agent did not connect";
    if (control.peer->fd() < 0) {
      return control;
    }
    auto head_text = control.peer->ReadHead();
    EXPECT_TRUE(head_text.has_value());
    if (!head_text) {
      return control;
    }
    proto::RequestHead head;
    EXPECT_EQ(proto::ParseRequestHead(*head_text, &head), proto::HeadResult::kComplete);
    proto::UpgradeParse parse = proto::ParseUpgradeRequest(head);
    EXPECT_TRUE(parse.request.has_value()) << proto::UpgradeErrorName(parse.error);
    if (parse.request) {
      control.request = *parse.request;
    }
    EXPECT_EQ(control.request.kind, proto::UpgradeKind::kControl);
    EXPECT_EQ(control.request.agent_id, "cam-42");
    EXPECT_EQ(proto::FormatKeyRef(control.request.key_ref), "k1.1767225600");
    EXPECT_EQ(head.headers.Find("Host").value_or(""),
              "127.0.0.1:" + std::to_string(gateway_.port()));
    return control;
  }

  // `exporter` must outlive the returned input (empty in plain mode).
  proto::HandshakeProofInput ProofInput(const ControlPeer& control,
                                        const std::vector<uint8_t>& exporter) const {
    return {.agent_id = "cam-42",
            .key_ref = &config_.key_ref,
            .agent_nonce = control.request.agent_nonce,
            .gateway_nonce = control.gateway_nonce,
            .transport = server_tls_ != nullptr ? proto::Transport::kTls : proto::Transport::kPlain,
            .exporter = exporter};
  }

  // Sends the 101 with a gateway proof under `key` (the agent's own unless testing forgery).
  void Send101(ControlPeer& control, const proto::Digest& key) {
    proto::RandomBytes(control.gateway_nonce);
    std::vector<uint8_t> exporter = control.peer->Exporter();
    proto::Digest proof = proto::GatewayProof(key, ProofInput(control, exporter));
    ASSERT_TRUE(control.peer->SendAll(proto::BuildControlAccept(control.gateway_nonce, proof)));
    if (server_tls_ == nullptr) {
      control.peer->SetSessionKey(
          proto::SessionKey(key_, control.request.agent_nonce, control.gateway_nonce));
    }
  }

  proto::Frame ExpectHello(ControlPeer& control) {
    auto hello = control.peer->ReadFrame();
    EXPECT_TRUE(hello.has_value()) << "no HELLO";
    if (!hello) {
      return {};
    }
    EXPECT_EQ(hello->type(), static_cast<uint8_t>(proto::FrameType::kHello));
    return *hello;
  }

  void SendWelcome(ControlPeer& control, uint32_t heartbeat_ms = 5000, uint32_t window_ms = 0) {
    proto::FrameBuilder welcome(proto::FrameType::kWelcome);
    welcome.AddU32(proto::Tag::kCapabilities, proto::kCapPlainFrameMac)
        .AddU32(proto::Tag::kHeartbeatMs, heartbeat_ms)
        .AddU64(proto::Tag::kServerTimeMs, 1767225600000ull)
        .AddU32(proto::Tag::kReconnectWindowMs, window_ms);
    control.peer->SendFrame(welcome);
  }

  // A complete handshake up to WELCOME.
  ControlPeer Establish(uint32_t heartbeat_ms = 5000) {
    ControlPeer control = AcceptControl();
    if (!control.peer || control.peer->fd() < 0) {
      return control;
    }
    Send101(control, key_);
    ExpectHello(control);
    SendWelcome(control, heartbeat_ms);
    return control;
  }

  void SendOpen(ControlPeer& control, std::string_view service, const proto::Nonce& nonce) {
    proto::FrameBuilder open(proto::FrameType::kOpen);
    open.AddText(proto::Tag::kTunnelId, kTunnelIdText)
        .AddText(proto::Tag::kServiceName, service)
        .Add(proto::Tag::kNonce, nonce);
    control.peer->SendFrame(open);
  }

  proto::Digest key_{};
  SSL_CTX* server_tls_ = nullptr;  // set by TLS tests
  Listener gateway_;
  Config config_;
  AgentOptions options_;
  std::unique_ptr<AgentRunner> runner_;  // last: stopped before the listeners close
};

}  // namespace camtunnel::agent::test_util
