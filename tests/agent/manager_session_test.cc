// The agent's manager link over plain TCP (PROTOCOL.md section 10.2) against a fake manager on
// real loopback sockets: the manager proof in plain mode, HELLO and every later frame MACed
// under the manager session key, ASSIGN opened, and the attacks a plain path allows (a forged
// DEACTIVATE, a replayed SWITCH) refused with ERROR 4 and a close; an https manager URL is never
// spoken to in plain.
#include "agent/manager_session.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "agent/agent.h"
#include "proto/manager_command.h"
#include "proto/manager_link.h"
#include "tests/agent/fake_gateway.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;
using test_util::Listener;
using test_util::Peer;

// What the session told its delegate, read from the test thread.
class Recorder final : public ManagerSession::Delegate {
 public:
  void OnManagerWelcome(const proto::LinkWelcome& welcome) override {
    Add("welcome" + std::string(welcome.managers.empty() ? "" : " managers=") +
        (welcome.managers.empty() ? "" : welcome.managers.front()));
  }
  // Acts on each command id once, as ManagedAgent does with its state file.
  bool TakeCommand(uint64_t command_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (command_id <= last_command_) {
      events_.push_back("duplicate " + std::to_string(command_id));
      return false;
    }
    last_command_ = command_id;
    return true;
  }
  void OnAssign(std::vector<proto::AssignedStreamer> streamers) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back("assign " + (streamers.empty() ? "" : streamers.front().url));
    keys_.push_back(streamers.empty() ? proto::Digest{} : streamers.front().agent_key);
  }
  void OnSwitch(std::string_view url) override { Add("switch " + std::string(url)); }
  void OnDeactivate(std::string_view /*reason*/) override { Add("deactivate"); }
  void OnRestart(std::string_view /*reason*/) override { Add("restart"); }
  void OnManagerLinkEnded(const ManagerLinkEnd& end) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back("ended");
    end_ = end;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::optional<ManagerLinkEnd> end() {
    std::lock_guard<std::mutex> lock(mu_);
    return end_;
  }
  uint64_t last_command_ = 0;
  proto::Digest first_key() {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_.empty() ? proto::Digest{} : keys_.front();
  }
  bool WaitEnded(int timeout_ms = 5000) {
    const int64_t deadline = test_util::SteadyMs() + timeout_ms;
    while (test_util::SteadyMs() < deadline) {
      if (end()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

 private:
  void Add(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  std::mutex mu_;
  std::vector<std::string> events_;
  std::vector<proto::Digest> keys_;
  std::optional<ManagerLinkEnd> end_;
};

class ManagerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < identity_.secret.size(); ++i) {
      identity_.secret[i] = static_cast<uint8_t>(0x60 + i);
    }
    identity_.agent_id = "cam-42";
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_.RequestStop();
      thread_.join();
    }
  }

  // Starts a session dialing `scheme`://127.0.0.1:<listener> with a plain transport.
  void StartSession(const std::string& scheme) {
    GatewayUrl url;
    std::string error;
    ASSERT_TRUE(
        ParseGatewayUrl(scheme + "://127.0.0.1:" + std::to_string(manager_.port()), &url, &error))
        << error;
    factory_ = MakePlainTransportFactory();
    session_ = std::make_unique<ManagerSession>(loop_, *factory_, MakeGatewayTarget(url), identity_,
                                                recorder_, 5000);
    thread_ = std::thread([this] {
      session_->Start();
      loop_.Run();
      session_.reset();
    });
  }

  // Accepts the link, checks the upgrade head and answers 101 with a plain-mode manager proof
  // under `secret`; the peer then seals and opens frames with the manager session key.
  std::unique_ptr<Peer> AcceptAndAccept(const proto::AgentSecret& secret) {
    auto peer = std::make_unique<Peer>(manager_.Accept());
    EXPECT_GE(peer->fd(), 0) << "the agent did not connect";
    auto head_text = peer->ReadHead();
    EXPECT_TRUE(head_text.has_value());
    if (!head_text) {
      return peer;
    }
    proto::RequestHead head;
    EXPECT_EQ(proto::ParseRequestHead(*head_text, &head), proto::HeadResult::kComplete);
    auto upgrade = proto::ParseManagerRequest(head);
    EXPECT_TRUE(upgrade.has_value());
    if (!upgrade) {
      return peer;
    }
    EXPECT_EQ(upgrade->agent_id, "cam-42");
    agent_nonce_ = upgrade->agent_nonce;
    proto::RandomBytes(manager_nonce_);
    const proto::Digest proof = proto::ManagerProof(secret, PlainInput());
    EXPECT_TRUE(peer->SendAll(proto::BuildControlAccept(manager_nonce_, proof)));
    peer->SetSessionKey(proto::ManagerSessionKey(secret, agent_nonce_, manager_nonce_));
    return peer;
  }

  proto::ManagerProofInput PlainInput() const {
    return {.agent_id = "cam-42",
            .agent_nonce = agent_nonce_,
            .manager_nonce = manager_nonce_,
            .transport = proto::Transport::kPlain,
            .exporter = {}};
  }

  // HELLO checked, WELCOME and an ASSIGN naming `gw` sent.
  std::unique_ptr<Peer> Establish(const std::string& gw = "https://gw1:8443",
                                  uint32_t heartbeat_ms = 5000) {
    auto peer = AcceptAndAccept(identity_.secret);
    auto hello = peer->ReadFrame();  // the peer checks the MAC (sequence 0)
    EXPECT_TRUE(hello.has_value());
    if (!hello) {
      return peer;
    }
    EXPECT_EQ(hello->type(), static_cast<uint8_t>(FrameType::kHello));
    auto proof = hello->Bytes(Tag::kProof);
    EXPECT_TRUE(proof && proto::ConstantTimeEqual(
                             *proof, proto::ManagerAgentProof(identity_.secret, PlainInput())));
    EXPECT_EQ(hello->U32(Tag::kCapabilities).value_or(0) & proto::kCapPlainFrameMac,
              proto::kCapPlainFrameMac);
    EXPECT_EQ(hello->U32(Tag::kCapabilities).value_or(0) & proto::kCapCommandAck,
              proto::kCapCommandAck);
    FrameBuilder welcome(FrameType::kWelcome);
    welcome.AddU32(Tag::kCapabilities, proto::kCapPlainFrameMac)
        .AddU32(Tag::kHeartbeatMs, heartbeat_ms)
        .AddU64(Tag::kServerTimeMs, 1767225600000ull)
        .AddU32(Tag::kReconnectWindowMs, 0)
        .AddText(Tag::kManager, "https://m1:7443");
    peer->SendFrame(welcome);
    proto::AssignedStreamer s{.url = gw, .key_ref = *proto::ParseKeyRef("k1.4102444800")};
    s.agent_key.fill(0x5a);
    FrameBuilder assign = proto::BuildAssign(proto::KeySealKey(identity_.secret, "cam-42"),
                                             "cam-42", std::vector<proto::AssignedStreamer>{s});
    peer->SendFrame(assign);
    return peer;
  }

  bool WaitFor(const std::string& event, int timeout_ms = 5000) {
    const int64_t deadline = test_util::SteadyMs() + timeout_ms;
    while (test_util::SteadyMs() < deadline) {
      for (const std::string& e : recorder_.events()) {
        if (e == event) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // The code of the agent's ERROR frame (its MAC checked by the peer, in sequence), after which
  // the agent must close.
  uint16_t ErrorCodeBeforeClose(Peer& peer) {
    auto error = peer.ReadFrameOfType(FrameType::kError);
    EXPECT_TRUE(error.has_value());
    EXPECT_EQ(peer.WaitClosed(), 0);
    return error ? error->U16(Tag::kErrorCode).value_or(0) : 0;
  }

  Listener manager_;
  EventLoop loop_;
  std::unique_ptr<TransportFactory> factory_;
  ManagerSession::Identity identity_;
  Recorder recorder_;
  std::unique_ptr<ManagerSession> session_;
  std::thread thread_;
  proto::Nonce agent_nonce_{};
  proto::Nonce manager_nonce_{};
};

TEST_F(ManagerSessionTest, PlainLinkMacsEveryFrameAndOpensTheSealedAssign) {
  StartSession("http");
  auto peer = Establish();
  ASSERT_TRUE(WaitFor("welcome managers=https://m1:7443"));
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  proto::Digest expected;
  expected.fill(0x5a);
  EXPECT_EQ(recorder_.first_key(), expected);
  // A sealed PING is answered with a sealed PONG (the peer checks sequence 1).
  FrameBuilder ping(FrameType::kPing);
  ping.AddU64(Tag::kSequence, 77);
  peer->SendFrame(ping);
  auto pong = peer->ReadFrameOfType(FrameType::kPong);
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->U64(Tag::kSequence), 77u);
  EXPECT_FALSE(recorder_.end().has_value());
}

// How the link ended decides where the agent goes next (PROTOCOL.md 10.5): a manager that
// fell silent is skipped, one that closed the link (restarting) is tried again.
TEST_F(ManagerSessionTest, AManagerThatFallsSilentEndsTheLinkAsSilent) {
  StartSession("http");
  auto peer = Establish("https://gw1:8443", /*heartbeat_ms=*/200);
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  // The manager answers nothing from now on (stopped): PINGs go unanswered.
  EXPECT_EQ(ErrorCodeBeforeClose(*peer), static_cast<uint16_t>(proto::ErrorCode::kTimeout));
  ASSERT_TRUE(recorder_.WaitEnded());
  EXPECT_TRUE(recorder_.end()->welcomed);
  EXPECT_TRUE(recorder_.end()->silent);
}

TEST_F(ManagerSessionTest, AManagerThatClosesTheLinkIsNotSilent) {
  StartSession("http");
  auto peer = Establish();
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  peer.reset();  // the manager process is gone: its kernel closes the connection
  ASSERT_TRUE(recorder_.WaitEnded());
  EXPECT_TRUE(recorder_.end()->welcomed);
  EXPECT_FALSE(recorder_.end()->silent);
}

TEST_F(ManagerSessionTest, ForgedDeactivateIsRefusedWithBadMacAndNeverActedOn) {
  StartSession("http");
  auto peer = Establish();
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  // Someone on the path without the session key: an unsealed DEACTIVATE, then one sealed
  // under a key of their own.
  FrameBuilder forged(FrameType::kDeactivate);
  forged.AddText(Tag::kText, "forged");
  std::vector<uint8_t> bytes = forged.Finish();
  ASSERT_TRUE(peer->SendAll(bytes));
  EXPECT_EQ(ErrorCodeBeforeClose(*peer), static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  ASSERT_TRUE(recorder_.WaitEnded());
  EXPECT_FALSE(WaitFor("deactivate", 50));
  EXPECT_EQ(recorder_.end()->reason, ManagerLinkEnd::Reason::kFailed);
  EXPECT_NE(recorder_.end()->detail.find("bad MAC on DEACTIVATE"), std::string::npos)
      << recorder_.end()->detail;
}

TEST_F(ManagerSessionTest, ReplayedSwitchIsRefused) {
  StartSession("http");
  auto peer = Establish();
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  // Record a correctly sealed SWITCH (sequence 2) and play it twice: the second copy carries a
  // MAC for sequence 2 where the agent expects 3.
  proto::FrameSealer sealer(
      proto::ManagerSessionKey(identity_.secret, agent_nonce_, manager_nonce_),
      proto::Direction::kGatewayToAgent);
  std::vector<uint8_t> recorded;
  for (int i = 0; i < 3; ++i) {
    FrameBuilder f(FrameType::kSwitch);
    f.AddText(Tag::kRedirect, "https://gw1:8443").AddText(Tag::kText, "moved");
    recorded = sealer.Seal(f);  // sequences 0, 1 (WELCOME, ASSIGN: not sent), then 2
  }
  ASSERT_TRUE(peer->SendAll(recorded));
  ASSERT_TRUE(WaitFor("switch https://gw1:8443"));
  ASSERT_TRUE(peer->SendAll(recorded));
  EXPECT_EQ(ErrorCodeBeforeClose(*peer), static_cast<uint16_t>(proto::ErrorCode::kBadMac));
  ASSERT_TRUE(recorder_.WaitEnded());
  int switches = 0;
  for (const std::string& e : recorder_.events()) {
    switches += e.starts_with("switch ") ? 1 : 0;
  }
  EXPECT_EQ(switches, 1);
}

// PROTOCOL.md 10.6: each command id is acknowledged; one delivered again is acknowledged as a
// duplicate and not redone; the ACK of RESTART precedes the close.
TEST_F(ManagerSessionTest, CommandsAreAcknowledgedOnceAndNeverRedone) {
  StartSession("http");
  auto peer = Establish();
  ASSERT_TRUE(WaitFor("assign https://gw1:8443"));
  auto ack_of = [&peer]() -> std::pair<uint64_t, std::string> {
    auto ack = peer->ReadFrameOfType(FrameType::kAck);
    EXPECT_TRUE(ack.has_value());
    auto parsed = ack ? proto::ParseAck(*ack) : std::nullopt;
    return parsed ? std::make_pair(parsed->command_id, parsed->outcome)
                  : std::make_pair(uint64_t{0}, std::string());
  };
  FrameBuilder first = proto::BuildCommand(FrameType::kSwitch, "moved", 5, "https://gw1:8443");
  peer->SendFrame(first);
  EXPECT_EQ(ack_of(), std::make_pair(uint64_t{5}, std::string("done")));
  FrameBuilder again = proto::BuildCommand(FrameType::kSwitch, "moved", 5, "https://gw1:8443");
  peer->SendFrame(again);
  EXPECT_EQ(ack_of(), std::make_pair(uint64_t{5}, std::string("duplicate")));
  FrameBuilder restart = proto::BuildCommand(FrameType::kRestart, "operator", 6);
  peer->SendFrame(restart);
  EXPECT_EQ(ack_of(), std::make_pair(uint64_t{6}, std::string("done")));
  ASSERT_TRUE(WaitFor("restart"));
  EXPECT_EQ(peer->WaitClosed(), 0);
  int switches = 0;
  for (const std::string& e : recorder_.events()) {
    switches += e.starts_with("switch ") ? 1 : 0;
  }
  EXPECT_EQ(switches, 1);
  EXPECT_TRUE(WaitFor("duplicate 5"));
}

TEST_F(ManagerSessionTest, HttpsManagerIsNeverSpokenToInPlain) {
  // The transport turned out plain (here: a plain factory) for an https manager URL: the agent
  // must not go on, even with a manager proof that is right for plain mode.
  StartSession("https");
  auto peer = AcceptAndAccept(identity_.secret);
  ASSERT_TRUE(recorder_.WaitEnded());
  EXPECT_EQ(peer->WaitClosed(), 0);
  EXPECT_TRUE(peer->buffered().empty()) << "the agent sent HELLO over a downgraded link";
  EXPECT_FALSE(recorder_.end()->welcomed);
}

TEST_F(ManagerSessionTest, PlainManagerProofUnderAnotherSecretClosesWithoutHello) {
  StartSession("http");
  proto::AgentSecret other = identity_.secret;
  other[0] ^= 1;
  auto peer = AcceptAndAccept(other);
  ASSERT_TRUE(recorder_.WaitEnded());
  EXPECT_EQ(recorder_.end()->reason, ManagerLinkEnd::Reason::kBadProof);
  EXPECT_EQ(peer->WaitClosed(), 0);
  EXPECT_TRUE(peer->buffered().empty());
}

}  // namespace
}  // namespace camtunnel::agent
