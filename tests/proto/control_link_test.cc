// The control-link core, agent against server, in memory: no sockets, a clock the test moves.
#include "proto/control_link.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/http_head.h"
#include "proto/manager_link.h"
#include "proto/upgrade.h"

namespace camtunnel::proto {
namespace {

constexpr int64_t kMs = 1000;

// One end's driver: collects output, records what the core reported.
class Recorder final : public ControlLink::Handler {
 public:
  void WriteLinkOutput(std::span<const uint8_t> bytes) override {
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  size_t QueuedLinkOutput() const override { return out.size(); }
  void OnLinkHello(const Frame& hello) override {
    ++hellos;
    hello_version = std::string(hello.Text(Tag::kVersion).value_or(""));
    services = {};
    for (std::string_view s : hello.AllText(Tag::kService)) {
      services.emplace_back(s);
    }
    if (refuse_hello) {
      link->Fail(ErrorCode::kMalformedFrame, "bad service entry", 0);
    }
  }
  void OnLinkEstablished(const LinkWelcome& w) override {
    ++established;
    welcome = w;
  }
  void OnLinkFrame(const Frame& frame) override { frames.push_back(frame); }
  void OnLinkUnsupported(uint8_t type) override { unsupported.push_back(type); }
  void OnLinkEnded(const LinkEnd& e) override {
    ++ends;
    end = e;
  }

  std::vector<uint8_t> Take() { return std::exchange(out, {}); }

  ControlLink* link = nullptr;
  bool refuse_hello = false;
  std::vector<uint8_t> out;
  int hellos = 0;
  int established = 0;
  int ends = 0;
  std::string hello_version;
  std::vector<std::string> services;
  LinkWelcome welcome;
  std::vector<Frame> frames;
  std::vector<uint8_t> unsupported;
  LinkEnd end;
};

std::vector<Frame> DecodeAll(std::span<const uint8_t> bytes) {
  std::vector<Frame> frames;
  FrameDecoder decoder;
  while (!bytes.empty()) {
    Frame f;
    if (decoder.Decode(bytes, &f) != DecodeStatus::kFrame) {
      break;
    }
    frames.push_back(std::move(f));
  }
  return frames;
}

struct Params {
  LinkKind kind;
  Transport transport;
};

class ControlLinkTest : public ::testing::TestWithParam<Params> {
 protected:
  ControlLinkTest() {
    key_.fill(0x42);
    key_ref_ = {.key_id = "k1", .expiry = 4102444800};
    agent_profile_ = {.role = LinkRole::kAgent,
                      .kind = GetParam().kind,
                      .capabilities = kCapPlainFrameMac,
                      .version = "test-agent/1"};
    server_profile_ = {.role = LinkRole::kServer,
                       .kind = GetParam().kind,
                       .capabilities = kCapPlainFrameMac,
                       .heartbeat_ms = 1000,
                       .reconnect_window_ms = 30000};
    exporter_.assign(tls() ? kExporterBytes : 0, 0x17);
    agent_nonce_.fill(0x05);
    agent_.link = &agent_link_;
    server_.link = &server_link_;
  }

  bool tls() const { return GetParam().transport == Transport::kTls; }
  LinkCredentials Credentials() const {
    return {.agent_id = "cam-1",
            .key = &key_,
            .key_ref = GetParam().kind == LinkKind::kGateway ? &key_ref_ : nullptr};
  }

  // Server accepts; the agent reads the 101 and answers HELLO (not yet delivered).
  void Upgrade(const Digest* agent_key = nullptr) {
    server_link_.AcceptUpgrade(Credentials(), agent_nonce_, GetParam().transport, exporter_, now_,
                               now_ + 5000 * kMs);
    std::vector<uint8_t> head_bytes = server_.Take();
    ResponseHead head;
    ASSERT_EQ(ParseResponseHead(std::string_view(reinterpret_cast<const char*>(head_bytes.data()),
                                                 head_bytes.size()),
                                &head),
              HeadResult::kComplete);
    ASSERT_EQ(head.status, 101);
    std::optional<ControlAccept> accept = ParseControlAccept(head);
    ASSERT_TRUE(accept.has_value());
    server_nonce_ = accept->gateway_nonce;
    LinkCredentials agent_credentials = Credentials();
    if (agent_key != nullptr) {
      agent_credentials.key = agent_key;
    }
    agent_link_.BeginAgent(agent_credentials, agent_nonce_, accept->gateway_nonce,
                           accept->gateway_proof, GetParam().transport, exporter_, services_, now_);
  }
  // Delivers what each side wrote to the other until both are quiet.
  void Exchange() {
    for (int i = 0; i < 10; ++i) {
      std::vector<uint8_t> a = agent_.Take();
      std::vector<uint8_t> s = server_.Take();
      if (a.empty() && s.empty()) {
        return;
      }
      server_link_.Receive(a, now_);
      agent_link_.Receive(s, now_);
    }
  }
  void Establish() {
    Upgrade();
    Exchange();
    ASSERT_TRUE(agent_link_.established());
    ASSERT_TRUE(server_link_.established());
  }
  // A frame as the agent would send it (sealed in plain mode) into the server.
  void AgentSends(FrameBuilder& frame) {
    agent_link_.Send(frame, now_);
    server_link_.Receive(agent_.Take(), now_);
  }

  Digest key_{};
  KeyRef key_ref_;
  Nonce agent_nonce_{};
  Nonce server_nonce_{};
  std::vector<uint8_t> exporter_;
  std::vector<std::string> services_ = {"rtsp=127.0.0.1:554", "http=127.0.0.1:80"};
  LinkProfile agent_profile_;
  LinkProfile server_profile_;
  Recorder agent_;
  Recorder server_;
  ControlLink agent_link_{agent_profile_, agent_};
  ControlLink server_link_{server_profile_, server_};
  int64_t now_ = 1000 * kMs;
};

TEST_P(ControlLinkTest, EstablishesWithHelloAndWelcome) {
  Establish();
  EXPECT_EQ(server_.hellos, 1);
  EXPECT_EQ(server_.hello_version, "test-agent/1");
  EXPECT_EQ(server_.services, services_);
  EXPECT_EQ(agent_.established, 1);
  EXPECT_EQ(server_.established, 1);
  EXPECT_EQ(agent_.welcome.heartbeat_ms, 1000u);
  EXPECT_EQ(agent_.welcome.reconnect_window_ms, 30000u);
  EXPECT_GT(agent_.welcome.server_time_ms, 0u);
  EXPECT_EQ(agent_link_.heartbeat_ms(), 1000u);
  EXPECT_EQ(agent_link_.plain(), !tls());
  EXPECT_EQ(server_link_.plain(), !tls());
  EXPECT_EQ(server_link_.peer_capabilities(), kCapPlainFrameMac);
}

TEST_P(ControlLinkTest, AgentRefusesAServerWithoutItsKey) {
  Digest other{};
  other.fill(0x43);
  Upgrade(&other);
  EXPECT_EQ(agent_.ends, 1);
  EXPECT_EQ(agent_.end.reason, LinkEndReason::kBadProof);
  EXPECT_TRUE(agent_.out.empty()) << "nothing may be sent to a party without our key";
}

TEST_P(ControlLinkTest, ServerRefusesAWrongHelloProof) {
  Upgrade();
  std::vector<uint8_t> hello = agent_.Take();
  // Flip a byte inside the proof field (header 4, tag 1, len 2: the proof starts at 7).
  hello[10] ^= 0x01;
  server_link_.Receive(hello, now_);
  EXPECT_EQ(server_.ends, 1);
  EXPECT_EQ(server_.hellos, 0);
  // Plain mode: the flipped byte also breaks the MAC. The gateway answers bad MAC; a manager
  // answers bad proof when the proof is wrong as well (PROTOCOL.md 10.2).
  const ErrorCode expected =
      tls() || GetParam().kind == LinkKind::kManager ? ErrorCode::kBadProof : ErrorCode::kBadMac;
  EXPECT_EQ(server_.end.sent, expected);
  agent_link_.Receive(server_.Take(), now_);
  EXPECT_EQ(agent_.ends, 1);
  if (tls()) {
    EXPECT_EQ(agent_.end.reason, LinkEndReason::kPeerError);
    EXPECT_EQ(agent_.end.peer_code, static_cast<uint16_t>(ErrorCode::kBadProof));
  }
}

TEST_P(ControlLinkTest, HandlerCanRefuseAVerifiedHello) {
  server_.refuse_hello = true;
  Upgrade();
  Exchange();
  EXPECT_EQ(server_.ends, 1);
  EXPECT_EQ(server_.established, 0);
  EXPECT_EQ(server_.end.sent, ErrorCode::kMalformedFrame);
  EXPECT_EQ(agent_.end.reason, LinkEndReason::kPeerError);
}

// Sealed as the agent's first frame would be (sequence 0 in plain mode).
TEST_P(ControlLinkTest, ServerWantsHelloFirst) {
  Upgrade();
  agent_.Take();  // the HELLO is dropped; a PING comes first
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 1);
  std::vector<uint8_t> first = ping.Finish();
  if (!tls()) {
    const Digest session_key = GetParam().kind == LinkKind::kManager
                                   ? ManagerSessionKey(key_, agent_nonce_, server_nonce_)
                                   : SessionKey(key_, agent_nonce_, server_nonce_);
    first = FrameSealer(session_key, Direction::kAgentToGateway).Seal(ping);
  }
  server_link_.Receive(first, now_);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kProtocol);
  EXPECT_EQ(server_.end.sent, ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(server_.hellos, 0);
}

TEST_P(ControlLinkTest, AgentWantsWelcomeFirst) {
  Upgrade();
  server_link_.Receive(agent_.Take(), now_);
  server_.Take();  // WELCOME, lost
  // Replace WELCOME with the server's next frame, a PING: the agent sees a PING first... in
  // plain mode its MAC (sequence 1) fails first, which ends the link too.
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 1);
  server_link_.Send(ping, now_);
  agent_link_.Receive(server_.Take(), now_);
  EXPECT_EQ(agent_.ends, 1);
  EXPECT_EQ(agent_.end.sent, tls() ? ErrorCode::kUnexpectedFrame : ErrorCode::kBadMac);
  EXPECT_EQ(agent_.established, 0);
}

TEST_P(ControlLinkTest, PingIsAnsweredAndTheRoundTripMeasured) {
  Establish();
  now_ += 1000 * kMs;
  EXPECT_EQ(server_link_.Tick(now_), now_ + 1000 * kMs);
  std::vector<Frame> sent = DecodeAll(server_.out);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type(), static_cast<uint8_t>(FrameType::kPing));
  agent_link_.Receive(server_.Take(), now_);
  now_ += 7 * kMs;
  server_link_.Receive(agent_.Take(), now_);
  EXPECT_EQ(server_link_.last_rtt_us(), 7000u);
  EXPECT_EQ(server_.ends, 0);
  EXPECT_EQ(agent_.ends, 0);
}

// The one heartbeat rule: PING after an interval with nothing sent; dead, with ERROR 6, after
// `heartbeat_misses` intervals with nothing received.
TEST_P(ControlLinkTest, SilentPeerIsDeadAfterTwoIntervals) {
  Establish();
  const int64_t start = now_;
  int pings = 0;
  int64_t due = server_link_.next_tick_us();
  while (due >= 0 && due < start + 10000 * kMs) {
    now_ = due;
    due = server_link_.Tick(now_);
    for (const Frame& f : DecodeAll(server_.Take())) {
      pings += f.type() == static_cast<uint8_t>(FrameType::kPing) ? 1 : 0;
    }
  }
  EXPECT_EQ(server_.ends, 1);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kTimeout);
  EXPECT_EQ(server_.end.sent, ErrorCode::kTimeout);
  EXPECT_TRUE(server_.end.established);
  EXPECT_EQ(now_ - start, 2000 * kMs);
  EXPECT_EQ(pings, 1);
}

TEST_P(ControlLinkTest, AgentUsesTheHeartbeatFromWelcome) {
  Establish();
  const int64_t start = now_;
  int64_t due = agent_link_.next_tick_us();
  EXPECT_EQ(due, start + 1000 * kMs);
  while (due >= 0 && due < start + 10000 * kMs) {
    now_ = due;
    due = agent_link_.Tick(now_);
  }
  EXPECT_EQ(agent_.end.reason, LinkEndReason::kTimeout);
  EXPECT_EQ(now_ - start, 2000 * kMs);
}

TEST_P(ControlLinkTest, HelloDeadline) {
  Upgrade();
  agent_.Take();
  EXPECT_EQ(server_link_.next_tick_us(), now_ + 5000 * kMs);
  now_ += 4999 * kMs;
  server_link_.Tick(now_);
  EXPECT_EQ(server_.ends, 0);
  now_ += kMs;
  EXPECT_EQ(server_link_.Tick(now_), -1);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kTimeout);
  EXPECT_FALSE(server_.end.established);
}

TEST_P(ControlLinkTest, FramesThisEndTakesAreDelivered) {
  Establish();
  FrameBuilder status(FrameType::kStatus);
  status.AddText(Tag::kText, "hello");
  AgentSends(status);
  ASSERT_EQ(server_.frames.size(), 1u);
  EXPECT_EQ(server_.frames[0].Text(Tag::kText), "hello");
}

// A manager announces every manager of its deployment (section 10.5); a gateway has none.
TEST_P(ControlLinkTest, WelcomeCarriesTheServersManagerList) {
  const std::vector<std::string> managers = {"https://m1:7443", "https://m2:7443"};
  server_profile_.managers = managers;
  Establish();
  EXPECT_EQ(agent_.welcome.managers, managers);
}

// ACK is a manager's frame (section 10.6): a gateway answers it UNSUPPORTED.
TEST_P(ControlLinkTest, AckIsTakenOnlyOnManagerLinks) {
  Establish();
  FrameBuilder ack(FrameType::kAck);
  ack.AddU64(Tag::kCommandId, 7).AddText(Tag::kText, "done");
  AgentSends(ack);
  if (GetParam().kind == LinkKind::kManager) {
    ASSERT_EQ(server_.frames.size(), 1u);
    EXPECT_EQ(server_.frames[0].U64(Tag::kCommandId), 7u);
  } else {
    EXPECT_EQ(server_.unsupported, (std::vector<uint8_t>{20}));
  }
}

TEST_P(ControlLinkTest, OtherFramesGetUnsupportedAndTheLinkStays) {
  Establish();
  FrameBuilder unknown(uint8_t{99});
  unknown.AddText(Tag::kText, "from the future");
  AgentSends(unknown);
  FrameBuilder wrong_direction(FrameType::kWelcome);
  AgentSends(wrong_direction);
  EXPECT_EQ(server_.unsupported, (std::vector<uint8_t>{99, 2}));
  EXPECT_TRUE(server_link_.established());
  // Both UNSUPPORTED answers reach the agent, which does not answer them.
  agent_link_.Receive(server_.Take(), now_);
  EXPECT_TRUE(agent_.out.empty());
  EXPECT_TRUE(agent_link_.established());
}

TEST_P(ControlLinkTest, GoawayEndsTheAgentsLink) {
  Establish();
  server_link_.GoAway("replaced", 1500, now_);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kClosedHere);
  agent_link_.Receive(server_.Take(), now_);
  EXPECT_EQ(agent_.end.reason, LinkEndReason::kGoaway);
  EXPECT_EQ(agent_.end.retry_after_ms, 1500);
  EXPECT_TRUE(agent_.end.established);
}

TEST_P(ControlLinkTest, OversizedFrameIsRefused) {
  Establish();
  std::vector<uint8_t> big = {static_cast<uint8_t>(FrameType::kStatus), 0x10, 0x00, 0x00};
  server_link_.Receive(big, now_);
  EXPECT_EQ(server_.end.sent, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kProtocol);
}

TEST_P(ControlLinkTest, PeerThatDoesNotReadIsDropped) {
  Establish();
  // The agent never reads: answers to its PINGs pile up at the server.
  for (int i = 0; i < 10000 && server_.ends == 0; ++i) {
    FrameBuilder ping(FrameType::kPing);
    ping.AddU64(Tag::kSequence, static_cast<uint64_t>(i));
    AgentSends(ping);
  }
  EXPECT_EQ(server_.end.reason, LinkEndReason::kNotReading);
  EXPECT_LE(server_.out.size(), server_profile_.max_output + 64);
}

TEST_P(ControlLinkTest, PeerErrorEndsTheLink) {
  Establish();
  agent_link_.Fail(ErrorCode::kInternal, "camera on fire", now_);
  EXPECT_EQ(agent_.end.sent, ErrorCode::kInternal);
  server_link_.Receive(agent_.Take(), now_);
  EXPECT_EQ(server_.end.reason, LinkEndReason::kPeerError);
  EXPECT_EQ(server_.end.peer_code, static_cast<uint16_t>(ErrorCode::kInternal));
  EXPECT_NE(server_.end.detail.find("camera on fire"), std::string::npos);
}

// Frame MACs are plain mode's.
class ControlLinkPlainTest : public ControlLinkTest {};

TEST_P(ControlLinkPlainTest, RefusesReplayedFrames) {
  Establish();
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 7);
  agent_link_.Send(ping, now_);
  std::vector<uint8_t> sealed = agent_.Take();
  server_link_.Receive(sealed, now_);
  EXPECT_EQ(server_.ends, 0);
  server_link_.Receive(sealed, now_);  // the same bytes again: a replay
  EXPECT_EQ(server_.end.sent, ErrorCode::kBadMac);
}

TEST_P(ControlLinkPlainTest, RefusesAnUnsealedFrame) {
  Establish();
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 7);
  agent_link_.Receive(ping.Finish(), now_);
  EXPECT_EQ(agent_.end.sent, ErrorCode::kBadMac);
}

std::string ParamName(const ::testing::TestParamInfo<Params>& info) {
  return std::string(info.param.kind == LinkKind::kGateway ? "Gateway" : "Manager") +
         (info.param.transport == Transport::kTls ? "Tls" : "Plain");
}

INSTANTIATE_TEST_SUITE_P(AllLinks, ControlLinkTest,
                         ::testing::Values(Params{LinkKind::kGateway, Transport::kTls},
                                           Params{LinkKind::kGateway, Transport::kPlain},
                                           Params{LinkKind::kManager, Transport::kTls},
                                           Params{LinkKind::kManager, Transport::kPlain}),
                         ParamName);
INSTANTIATE_TEST_SUITE_P(PlainLinks, ControlLinkPlainTest,
                         ::testing::Values(Params{LinkKind::kGateway, Transport::kPlain},
                                           Params{LinkKind::kManager, Transport::kPlain}),
                         ParamName);

}  // namespace
}  // namespace camtunnel::proto
