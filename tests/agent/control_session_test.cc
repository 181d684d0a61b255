// The agent's control session against a fake gateway on real loopback sockets (plain mode, so
// every frame is MACed): upgrade, gateway-proof check, HELLO, heartbeats, OPEN handling,
// GOAWAY/503/deadline reconnect pacing, and protocol errors.
#include "agent/control_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/agent/fake_gateway.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;
using test_util::AgentRunner;
using test_util::ControlPeer;
using test_util::Listener;
using test_util::Peer;
using test_util::SteadyMs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ControlSessionTest = test_util::AgentTest;

TEST_F(ControlSessionTest, HelloCarriesAgentProofCapabilitiesVersionAndServices) {
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  Send101(control, key_);
  proto::Frame hello = ExpectHello(control);
  auto proof = hello.Bytes(Tag::kProof);
  ASSERT_TRUE(proof.has_value());
  proto::Digest expected = proto::AgentProof(key_, ProofInput(control, {}));
  EXPECT_TRUE(proto::ConstantTimeEqual(*proof, expected));
  EXPECT_EQ(hello.U32(Tag::kCapabilities).value_or(0),
            proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno | proto::kCapSpareData |
                proto::kCapSpareEarlyData);
  EXPECT_EQ(hello.Text(Tag::kVersion).value_or(""), "camtunnel-agent/0.1.0");
  EXPECT_THAT(hello.AllText(Tag::kService), ElementsAre("rtsp=127.0.0.1:554", "http=127.0.0.1:80"));
}

TEST_F(ControlSessionTest, AnswersPingWithPongEchoingTheSequence) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 0x0102030405060708ull);
  control.peer->SendFrame(ping);
  auto pong = control.peer->ReadFrame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type(), static_cast<uint8_t>(FrameType::kPong));
  EXPECT_EQ(pong->U64(Tag::kSequence).value_or(0), 0x0102030405060708ull);
}

TEST_F(ControlSessionTest, SendsPingWhenIdleForAHeartbeatInterval) {
  StartAgent();
  ControlPeer control = Establish(/*heartbeat_ms=*/150);
  ASSERT_GE(control.peer->fd(), 0);
  int64_t start = SteadyMs();
  auto ping = control.peer->ReadFrame(2000);
  ASSERT_TRUE(ping.has_value());
  EXPECT_EQ(ping->type(), static_cast<uint8_t>(FrameType::kPing));
  EXPECT_LT(SteadyMs() - start, 1000);
  // Answering keeps the session alive past two intervals.
  FrameBuilder pong(FrameType::kPong);
  pong.AddU64(Tag::kSequence, ping->U64(Tag::kSequence).value_or(0));
  control.peer->SendFrame(pong);
  auto second = control.peer->ReadFrame(2000);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->type(), static_cast<uint8_t>(FrameType::kPing));
  EXPECT_GT(second->U64(Tag::kSequence).value_or(0), ping->U64(Tag::kSequence).value_or(0));
}

TEST_F(ControlSessionTest, SilentGatewayIsDeclaredDeadAndTheAgentReconnects) {
  StartAgent();
  ControlPeer control = Establish(/*heartbeat_ms=*/100);
  ASSERT_GE(control.peer->fd(), 0);
  // No answers: after two intervals the agent gives up with ERROR timeout and closes.
  auto error = control.peer->ReadFrameOfType(FrameType::kError, 3000);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->U16(Tag::kErrorCode).value_or(0),
            static_cast<uint16_t>(proto::ErrorCode::kTimeout));
  EXPECT_EQ(control.peer->WaitClosed(3000), 0);
  ControlPeer again = AcceptControl(3000);
  EXPECT_GE(again.peer->fd(), 0);
}

TEST_F(ControlSessionTest, OpenToARefusedPortAnswersOpenFailedWithEconnrefused) {
  config_.services = {
      *proto::ParseServiceEntry("rtsp=127.0.0.1:" + std::to_string(test_util::UnusedPort()))};
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  proto::Nonce nonce{};
  SendOpen(control, "rtsp", nonce);
  auto failed = control.peer->ReadFrameOfType(FrameType::kOpenFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->Text(Tag::kTunnelId).value_or(""), kTunnelIdText);
  EXPECT_EQ(failed->U32(Tag::kErrno).value_or(0), static_cast<uint32_t>(ECONNREFUSED));
  EXPECT_THAT(std::string(failed->Text(Tag::kText).value_or("")), HasSubstr("refused"));
  // No data connection was attempted.
  EXPECT_LT(gateway_.Accept(200), 0);
}

TEST_F(ControlSessionTest, OpenForAServiceNotExposedAnswersEperm) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  proto::Nonce nonce{};
  SendOpen(control, "ssh", nonce);
  auto failed = control.peer->ReadFrameOfType(FrameType::kOpenFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->Text(Tag::kTunnelId).value_or(""), kTunnelIdText);
  EXPECT_EQ(failed->U32(Tag::kErrno).value_or(0), static_cast<uint32_t>(EPERM));
  EXPECT_LT(gateway_.Accept(200), 0);
}

TEST_F(ControlSessionTest, WrongGatewayProofClosesWithoutHello) {
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  proto::Digest other_key = key_;
  other_key[0] ^= 1;
  Send101(control, other_key);
  EXPECT_EQ(control.peer->WaitClosed(), 0);
  EXPECT_TRUE(control.peer->buffered().empty()) << "the agent sent bytes after a forged 101";
  // It retries (backing off at the cap) and completes with the right gateway.
  ControlPeer again = AcceptControl(3000);
  ASSERT_GE(again.peer->fd(), 0);
  Send101(again, key_);
  proto::Frame hello = ExpectHello(again);
  EXPECT_TRUE(hello.Bytes(Tag::kProof).has_value());
}

TEST_F(ControlSessionTest, UnknownFrameTypeGetsUnsupportedAndSessionStaysUp) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  FrameBuilder unknown(static_cast<uint8_t>(99));
  unknown.AddText(Tag::kText, "from the future");
  control.peer->SendFrame(unknown);
  auto unsupported = control.peer->ReadFrame();
  ASSERT_TRUE(unsupported.has_value());
  EXPECT_EQ(unsupported->type(), static_cast<uint8_t>(FrameType::kUnsupported));
  EXPECT_EQ(unsupported->U8(Tag::kFrameType).value_or(0), 99);
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 5);
  control.peer->SendFrame(ping);
  auto pong = control.peer->ReadFrame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type(), static_cast<uint8_t>(FrameType::kPong));
}

TEST_F(ControlSessionTest, FrameWithBadMacGetsErrorAndClose) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  // A PING sealed under another key, as an on-path injector would have to.
  proto::Digest wrong{};
  proto::FrameSealer forger(wrong, proto::Direction::kGatewayToAgent);
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 1);
  ASSERT_TRUE(control.peer->SendAll(forger.Seal(ping)));
  auto error = control.peer->ReadFrame();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->type(), static_cast<uint8_t>(FrameType::kError));
  EXPECT_EQ(error->U16(Tag::kErrorCode).value_or(0),
            static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  EXPECT_EQ(control.peer->WaitClosed(), 0);
}

TEST_F(ControlSessionTest, FirstFrameOtherThanWelcomeIsRejected) {
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  Send101(control, key_);
  ExpectHello(control);
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 1);
  control.peer->SendFrame(ping);
  auto error = control.peer->ReadFrame();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->type(), static_cast<uint8_t>(FrameType::kError));
  EXPECT_EQ(error->U16(Tag::kErrorCode).value_or(0),
            static_cast<uint16_t>(proto::ErrorCode::kUnexpectedFrame));
  EXPECT_EQ(control.peer->WaitClosed(), 0);
}

TEST_F(ControlSessionTest, GoawayReconnectsAfterTheHint) {
  StartAgent();
  ControlPeer control = Establish();
  ASSERT_GE(control.peer->fd(), 0);
  FrameBuilder goaway(FrameType::kGoaway);
  goaway.AddU32(Tag::kReconnectAfterMs, 400).AddText(Tag::kText, "draining");
  int64_t sent = SteadyMs();
  control.peer->SendFrame(goaway);
  EXPECT_EQ(control.peer->WaitClosed(), 0);
  ControlPeer again = AcceptControl(5000);
  ASSERT_GE(again.peer->fd(), 0);
  EXPECT_GE(SteadyMs() - sent, 390);
}

TEST_F(ControlSessionTest, BusyGatewayRetryAfterIsHonoured) {
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  int64_t sent = SteadyMs();
  ASSERT_TRUE(control.peer->SendAll(
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n"));
  control.peer.reset();
  ControlPeer again = AcceptControl(5000);
  ASSERT_GE(again.peer->fd(), 0);
  EXPECT_GE(SteadyMs() - sent, 990);
}

TEST_F(ControlSessionTest, EarlyCloseIsBusyAndRetried) {
  StartAgent();
  int fd = gateway_.Accept();
  ASSERT_GE(fd, 0);
  close(fd);  // over the handshake budget: closed before answering
  ControlPeer again = AcceptControl(3000);
  ASSERT_GE(again.peer->fd(), 0);
}

TEST_F(ControlSessionTest, UnansweredUpgradeIsAbandonedAtTheHandshakeDeadline) {
  options_.session.handshake_deadline_ms = 300;
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  int64_t start = SteadyMs();
  EXPECT_EQ(control.peer->WaitClosed(3000), 0);
  EXPECT_GE(SteadyMs() - start, 250);
  ControlPeer again = AcceptControl(3000);
  EXPECT_GE(again.peer->fd(), 0);
}

TEST_F(ControlSessionTest, GatewayErrorBadProofClosesAndRetries) {
  StartAgent();
  ControlPeer control = AcceptControl();
  ASSERT_GE(control.peer->fd(), 0);
  Send101(control, key_);
  ExpectHello(control);
  FrameBuilder error(FrameType::kError);
  error.AddU16(Tag::kErrorCode, static_cast<uint16_t>(proto::ErrorCode::kBadProof))
      .AddText(Tag::kText, "bad proof");
  control.peer->SendFrame(error);
  EXPECT_EQ(control.peer->WaitClosed(), 0);
  ControlPeer again = AcceptControl(3000);
  EXPECT_GE(again.peer->fd(), 0);
}

}  // namespace
}  // namespace camtunnel::agent
