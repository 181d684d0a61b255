// Tunnels end to end in plain mode: OPEN -> camera connect -> data connection with the data
// proof -> relay both ways (early camera bytes, bytes after the 101, bulk data), half-close in
// each direction, reset propagation, and a rejected data connection.
#include "agent/tunnel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <random>

#include "agent/pin.h"
#include "tests/agent/fake_gateway.h"
#include "tests/agent/tls_test_util.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;
using test_util::ControlPeer;
using test_util::Listener;
using test_util::Peer;
using test_util::SteadyMs;

class TunnelTest : public test_util::AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    config_.services = {
        *proto::ParseServiceEntry("rtsp=127.0.0.1:" + std::to_string(camera_.port()))};
    for (size_t i = 0; i < open_nonce_.size(); ++i) {
      open_nonce_[i] = static_cast<uint8_t>(0xd0 + i);
    }
  }

  // Sends OPEN, accepts the camera connection and the data connection, and checks the data
  // upgrade request and its proof. Does not answer it.
  void OpenTunnel(ControlPeer& control) {
    SendOpen(control, "rtsp", open_nonce_);
    int cam_fd = camera_.Accept();
    ASSERT_GE(cam_fd, 0) << "the agent did not connect to the camera";
    camera_peer_ = std::make_unique<Peer>(cam_fd);
    data_peer_ = AcceptPeer(gateway_);
    ASSERT_GE(data_peer_->fd(), 0) << "the agent did not open a data connection";
    auto head_text = data_peer_->ReadHead();
    ASSERT_TRUE(head_text.has_value());
    proto::RequestHead head;
    ASSERT_EQ(proto::ParseRequestHead(*head_text, &head), proto::HeadResult::kComplete);
    proto::UpgradeParse parse = proto::ParseUpgradeRequest(head);
    ASSERT_TRUE(parse.request.has_value()) << proto::UpgradeErrorName(parse.error);
    EXPECT_EQ(parse.request->kind, proto::UpgradeKind::kData);
    EXPECT_EQ(parse.request->agent_id, "cam-42");
    EXPECT_EQ(proto::FormatTunnelId(parse.request->tunnel_id), kTunnelIdText);
    // Bound to the data connection's own exporter (empty in plain mode).
    std::vector<uint8_t> exporter = data_peer_->Exporter();
    proto::DataProofInput input{
        .agent_id = "cam-42",
        .key_ref = &config_.key_ref,
        .tunnel_id = parse.request->tunnel_id,
        .open_nonce = open_nonce_,
        .transport = server_tls_ != nullptr ? proto::Transport::kTls : proto::Transport::kPlain,
        .exporter = exporter};
    EXPECT_TRUE(proto::ConstantTimeEqual(parse.request->proof, proto::DataProof(key_, input)))
        << "wrong data proof";
  }

  // Writes `data` into `from` while reading `to`, without blocking either way (the relay in
  // between may apply backpressure). Returns what `to` received.
  static std::string Transfer(Peer& from, Peer& to, const std::string& data) {
    size_t sent = 0;
    int64_t deadline = SteadyMs() + 20000;
    while (to.buffered().size() < data.size() && SteadyMs() < deadline) {
      pollfd fds[2] = {{from.fd(), static_cast<short>(sent < data.size() ? POLLOUT : 0), 0},
                       {to.fd(), POLLIN, 0}};
      poll(fds, 2, 100);
      if ((fds[0].revents & POLLOUT) != 0) {
        ssize_t n = send(from.fd(), data.data() + sent, std::min<size_t>(data.size() - sent, 65536),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        }
      }
      if ((fds[1].revents & (POLLIN | POLLHUP)) != 0 && to.ReadSome(0) <= 0) {
        break;
      }
    }
    return to.Take(to.buffered().size());
  }

  Listener camera_;
  proto::Nonce open_nonce_{};
  std::unique_ptr<Peer> camera_peer_;
  std::unique_ptr<Peer> data_peer_;
};

TEST_F(TunnelTest, RelaysBothWaysIncludingEarlyBytesAndHalfCloses) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  // The camera talks before the gateway has answered: those bytes are held, not lost.
  ASSERT_TRUE(camera_peer_->SendAll("RTSP/1.0 banner"));
  // The 101 arrives together with the media server's first request.
  const std::string request = "DESCRIBE rtsp://127.0.0.1/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept() + request));
  ASSERT_TRUE(camera_peer_->ReadAtLeast(request.size()));
  EXPECT_EQ(camera_peer_->Take(request.size()), request);
  ASSERT_TRUE(data_peer_->ReadAtLeast(15));
  EXPECT_EQ(data_peer_->Take(15), "RTSP/1.0 banner");

  // Bulk both ways, larger than the relay buffers and socket buffers together.
  std::mt19937 rng(7);
  std::string up(3 << 20, '\0');
  std::string down(3 << 20, '\0');
  for (auto& c : up) {
    c = static_cast<char>(rng());
  }
  for (auto& c : down) {
    c = static_cast<char>(rng());
  }
  EXPECT_TRUE(Transfer(*camera_peer_, *data_peer_, up) == up) << "camera->gateway corrupted";
  EXPECT_TRUE(Transfer(*data_peer_, *camera_peer_, down) == down) << "gateway->camera corrupted";

  // Camera ends its side: the gateway sees EOF, and can still send to the camera.
  shutdown(camera_peer_->fd(), SHUT_WR);
  EXPECT_EQ(data_peer_->WaitClosed(), 0);
  ASSERT_TRUE(data_peer_->SendAll("TEARDOWN done"));
  ASSERT_TRUE(camera_peer_->ReadAtLeast(13));
  EXPECT_EQ(camera_peer_->Take(13), "TEARDOWN done");
  // Then the gateway ends too: the camera sees a clean EOF.
  shutdown(data_peer_->fd(), SHUT_WR);
  EXPECT_EQ(camera_peer_->WaitClosed(), 0);
}

TEST_F(TunnelTest, GatewayHalfCloseReachesTheCameraFirst) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept() + "GET /snapshot.jpg HTTP/1.0\r\n\r\n"));
  shutdown(data_peer_->fd(), SHUT_WR);
  EXPECT_EQ(camera_peer_->WaitClosed(), 0);
  EXPECT_EQ(camera_peer_->buffered(), "GET /snapshot.jpg HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(camera_peer_->SendAll("HTTP/1.0 200 OK\r\n\r\nJPEG"));
  shutdown(camera_peer_->fd(), SHUT_WR);
  EXPECT_EQ(data_peer_->WaitClosed(), 0);
  EXPECT_EQ(data_peer_->buffered(), "HTTP/1.0 200 OK\r\n\r\nJPEG");
}

TEST_F(TunnelTest, CameraResetResetsTheGatewaySide) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept()));
  ASSERT_TRUE(camera_peer_->SendAll("x"));
  ASSERT_TRUE(data_peer_->ReadAtLeast(1));
  linger lg{1, 0};
  setsockopt(camera_peer_->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  camera_peer_.reset();  // RST
  EXPECT_EQ(data_peer_->WaitClosed(), ECONNRESET);
}

TEST_F(TunnelTest, RejectedDataConnectionIsReportedAsOpenFailed) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildUpgradeError(404, "no such tunnel")));
  data_peer_.reset();
  auto failed = control.peer->ReadFrameOfType(FrameType::kOpenFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->Text(Tag::kTunnelId).value_or(""), kTunnelIdText);
  EXPECT_EQ(failed->U32(Tag::kErrno).value_or(0), static_cast<uint32_t>(EPROTO));
  EXPECT_NE(std::string(failed->Text(Tag::kText).value_or("")).find("404"), std::string::npos);
  // The camera connection is dropped (reset) rather than left dangling.
  EXPECT_GE(camera_peer_->WaitClosed(), 0);
}

TEST_F(TunnelTest, SlowGatewayStallsTheCameraInsteadOfBuffering) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept()));
  // The gateway reads nothing. The camera writes until its socket stays full: an agent that
  // kept reading the camera regardless would swallow all 256 MiB.
  constexpr size_t kLimit = 256u << 20;
  const std::string chunk(1 << 16, 'v');
  size_t written = 0;
  while (written < kLimit) {
    ssize_t n = send(camera_peer_->fd(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << strerror(errno);
    pollfd pfd{camera_peer_->fd(), POLLOUT, 0};
    if (poll(&pfd, 1, 300) == 0) {
      break;  // stalled: backpressure reached the camera
    }
  }
  EXPECT_LT(written, kLimit) << "the agent never stopped reading the camera";
  // Everything written is then delivered, in order and complete.
  ASSERT_TRUE(data_peer_->ReadAtLeast(written, 20000));
  EXPECT_EQ(data_peer_->buffered().size(), written);
  EXPECT_EQ(data_peer_->buffered().find_first_not_of('v'), std::string::npos);
}

TEST_F(TunnelTest, TunnelsOutliveTheControlSession) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept()));
  control.peer.reset();  // control connection lost
  ASSERT_TRUE(camera_peer_->SendAll("still flowing"));
  ASSERT_TRUE(data_peer_->ReadAtLeast(13));
  EXPECT_EQ(data_peer_->Take(13), "still flowing");
}

// The same path over TLS: pinned gateway key, proofs bound to each connection's exporter (the
// control and data connections have different ones), a resumed session for the data
// connection, and half-close carried as close_notify.
TEST_F(TunnelTest, ControlAndTunnelOverTlsWithResumptionAndCloseNotify) {
  test_util::TestCert cert;
  test_util::MakeSelfSigned("gateway.test", &cert);
  server_tls_ = SSL_CTX_new(TLS_server_method());
  ASSERT_EQ(SSL_CTX_use_certificate(server_tls_, cert.cert), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(server_tls_, cert.key), 1);
  std::string error;
  ASSERT_TRUE(ParseGatewayUrl("https://127.0.0.1:" + std::to_string(gateway_.port()),
                              &config_.gateway, &error));
  auto factory = MakeOpenSslTransportFactory(
      {.pins = {SpkiSha256(cert.cert)}, .server_name = "gateway.test"}, &error);
  ASSERT_NE(factory, nullptr) << error;
  StartAgent(std::move(factory));

  ControlPeer control = Establish();  // verifies the TLS-mode agent proof in HELLO
  ASSERT_GE(control.peer->fd(), 0);
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 9);
  control.peer->SendFrame(ping);
  auto pong = control.peer->ReadFrameOfType(FrameType::kPong);
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->U64(Tag::kSequence).value_or(0), 9u);

  ASSERT_NO_FATAL_FAILURE(OpenTunnel(control));  // verifies the data proof
  EXPECT_EQ(SSL_session_reused(data_peer_->ssl()), 1) << "data connection did not resume";
  EXPECT_NE(data_peer_->Exporter(), control.peer->Exporter());
  const std::string request = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
  const std::string response = "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n";
  ASSERT_TRUE(data_peer_->SendAll(proto::BuildDataAccept() + request));
  ASSERT_TRUE(camera_peer_->ReadAtLeast(request.size()));
  EXPECT_EQ(camera_peer_->Take(request.size()), request);
  ASSERT_TRUE(camera_peer_->SendAll(response));
  ASSERT_TRUE(data_peer_->ReadAtLeast(response.size()));
  EXPECT_EQ(data_peer_->Take(response.size()), response);
  // Camera EOF becomes close_notify (a clean TLS end, not a truncation)...
  shutdown(camera_peer_->fd(), SHUT_WR);
  EXPECT_EQ(data_peer_->WaitClosed(), 0);
  // ...and the gateway's close_notify becomes a FIN toward the camera.
  ASSERT_TRUE(data_peer_->SendAll("bye"));
  data_peer_->ShutdownWrite();
  EXPECT_EQ(camera_peer_->WaitClosed(), 0);
  EXPECT_EQ(camera_peer_->buffered(), "bye");
}

}  // namespace
}  // namespace camtunnel::agent
