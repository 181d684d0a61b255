// A managed agent whose manager no longer knows it (PROTOCOL.md 10.2): a link refused 401 sends
// it back to activation with its factory secret and the proof of the secret it holds; a fresh
// secret in the answer replaces its state (the next link proves the new one, the last command id
// starts over), and 403 `deactivated` leaves its state alone and sends it back to its manager.
// A fake activation server and a fake manager on loopback sockets, over plain HTTP and a plain
// manager link.
#include "agent/managed_agent.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/tls_transport.h"
#include "proto/activation_message.h"
#include "proto/encoding.h"
#include "proto/manager_link.h"
#include "tests/agent/fake_gateway.h"

namespace camtunnel::agent {
namespace {

using nlohmann::json;
using test_util::Listener;
using test_util::Peer;

constexpr const char* kSerial = "cam-42";

proto::AgentSecret Filled(uint8_t value) {
  proto::AgentSecret s;
  s.fill(value);
  return s;
}

class ManagedAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    std::string pattern =
        (std::filesystem::temp_directory_path() / "camtunnel-managed-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    state_file_ = dir_ + "/state";
    factory_secret_.fill(0x33);
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_.RequestStop();
      thread_.join();
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string ManagerUrl() const { return "http://127.0.0.1:" + std::to_string(manager_.port()); }

  // An agent activated before: its secret, and a command it acted on.
  void WriteState(const proto::AgentSecret& secret) {
    AgentState state{.agent_id = kSerial,
                     .manager_url = ManagerUrl(),
                     .secret = secret,
                     .last_good_unix_s = 1767225600,
                     .last_command_id = 7};
    std::string error;
    ASSERT_TRUE(SaveAgentState(state_file_, state, &error)) << error;
  }

  AgentState ReadState() {
    std::string error;
    std::optional<AgentState> state = LoadAgentState(state_file_, &error);
    EXPECT_TRUE(state.has_value()) << error;
    return state.value_or(AgentState{});
  }

  void StartAgent() {
    GatewayUrl activation;
    std::string error;
    ASSERT_TRUE(ParseGatewayUrl("http://127.0.0.1:" + std::to_string(activation_.port()),
                                &activation, &error))
        << error;
    ManagedOptions options{.state_file = state_file_,
                           .activation_url = activation,
                           .serial = kSerial,
                           .factory_secret = factory_secret_,
                           .operator_id = "acme"};
    // Short backoff steps: the test waits for each retry.
    AgentOptions agent_options{.backoff = {.base_ms = 10, .cap_ms = 50}, .seed = 1};
    agent_ = std::make_unique<ManagedAgent>(
        loop_, options, std::vector<proto::ServiceEntry>{},
        [](const GatewayUrl&) { return MakePlainTransportFactory(); }, agent_options);
    thread_ = std::thread([this] {
      agent_->Start();
      loop_.Run();
      agent_.reset();
    });
  }

  // Takes the agent's next manager link and answers it 401, as a manager whose database does
  // not have the agent.
  void RefuseNextLink() {
    Peer peer(manager_.Accept());
    ASSERT_GE(peer.fd(), 0) << "the agent did not dial its manager";
    ASSERT_TRUE(peer.ReadHead().has_value());
    const std::string body = R"({"error":"unknown or deactivated agent"})";
    ASSERT_TRUE(
        peer.SendAll("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  }

  // Takes the agent's next activation request and answers it `status` with `answer`; returns
  // the request's body.
  json AnswerNextActivation(int status, const json& answer) {
    Peer peer(activation_.Accept());
    EXPECT_GE(peer.fd(), 0) << "the agent did not ask the activation server";
    std::optional<std::string> head = peer.ReadHead();
    EXPECT_TRUE(head.has_value());
    if (!head) {
      return json();
    }
    const size_t at = head->find("Content-Length: ");
    EXPECT_NE(at, std::string::npos) << *head;
    const size_t length = std::stoul(head->substr(at + 16));
    EXPECT_TRUE(peer.ReadAtLeast(length));
    json request = json::parse(peer.Take(length), nullptr, /*allow_exceptions=*/false);
    const std::string body = answer.dump();
    EXPECT_TRUE(peer.SendAll("HTTP/1.1 " + std::to_string(status) +
                             " X\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             "Content-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
    return request;
  }

  // Takes the agent's next manager link as a manager holding `secret`: the 101 with the manager
  // proof, then the agent's HELLO, whose MAC and proof must come from the same secret.
  void ExpectLinkWith(const proto::AgentSecret& secret) {
    Peer peer(manager_.Accept());
    ASSERT_GE(peer.fd(), 0) << "the agent did not dial its manager";
    std::optional<std::string> text = peer.ReadHead();
    ASSERT_TRUE(text.has_value());
    proto::RequestHead head;
    ASSERT_EQ(proto::ParseRequestHead(*text, &head), proto::HeadResult::kComplete);
    std::optional<proto::ManagerUpgrade> upgrade = proto::ParseManagerRequest(head);
    ASSERT_TRUE(upgrade.has_value());
    std::array<uint8_t, 16> manager_nonce{};
    proto::RandomBytes(manager_nonce);
    const proto::ManagerProofInput input{.agent_id = kSerial,
                                         .agent_nonce = upgrade->agent_nonce,
                                         .manager_nonce = manager_nonce,
                                         .transport = proto::Transport::kPlain,
                                         .exporter = {}};
    ASSERT_TRUE(
        peer.SendAll(proto::BuildControlAccept(manager_nonce, proto::ManagerProof(secret, input))));
    peer.SetSessionKey(proto::ManagerSessionKey(secret, upgrade->agent_nonce, manager_nonce));
    std::optional<proto::Frame> hello = peer.ReadFrame();  // its MAC checked under `secret`
    ASSERT_TRUE(hello.has_value()) << "no HELLO sealed under the expected secret";
    ASSERT_EQ(hello->type(), static_cast<uint8_t>(proto::FrameType::kHello));
    std::optional<std::span<const uint8_t>> proof = hello->Bytes(proto::Tag::kProof);
    ASSERT_TRUE(proof.has_value());
    EXPECT_TRUE(proto::ConstantTimeEqual(*proof, proto::ManagerAgentProof(secret, input)));
  }

  std::string dir_;
  std::string state_file_;
  proto::Digest factory_secret_{};
  Listener activation_;
  Listener manager_;
  EventLoop loop_;
  std::unique_ptr<ManagedAgent> agent_;
  std::thread thread_;
};

TEST_F(ManagedAgentTest, ARefusedLinkActivatesAgainAndAFreshSecretReplacesTheState) {
  const proto::AgentSecret old_secret = Filled(0x11);
  const proto::AgentSecret new_secret = Filled(0x22);
  WriteState(old_secret);
  StartAgent();
  RefuseNextLink();
  json request = AnswerNextActivation(200, {{"agent_id", kSerial},
                                            {"manager_url", ManagerUrl()},
                                            {"agent_secret", proto::HexEncode(new_secret)}});
  // The factory secret, and the proof of the secret it holds.
  EXPECT_EQ(request["serial"], kSerial);
  EXPECT_EQ(request["factory_secret"], proto::HexEncode(factory_secret_));
  EXPECT_EQ(request["agent_proof"],
            proto::HexEncode(proto::ReactivationProof(old_secret, kSerial)));
  ExpectLinkWith(new_secret);
  const AgentState state = ReadState();
  EXPECT_EQ(state.secret, new_secret);
  EXPECT_EQ(state.last_command_id, 0u);           // the new record's commands start over
  EXPECT_GE(state.last_good_unix_s, 1767225600);  // the clock floor it had is kept
}

TEST_F(ManagedAgentTest, ADeactivatedAgentKeepsItsStateAndGoesBackToItsManager) {
  const proto::AgentSecret secret = Filled(0x11);
  WriteState(secret);
  StartAgent();
  RefuseNextLink();
  json request =
      AnswerNextActivation(403, {{"result", "deactivated"}, {"error", "serial deactivated"}});
  EXPECT_EQ(request["agent_proof"], proto::HexEncode(proto::ReactivationProof(secret, kSerial)));
  // Nothing replaced: the next attempt is its manager link again, with the same secret.
  ExpectLinkWith(secret);
  const AgentState state = ReadState();
  EXPECT_EQ(state.secret, secret);
  EXPECT_EQ(state.last_command_id, 7u);
}

}  // namespace
}  // namespace camtunnel::agent
