// Several managers and commands (PROTOCOL.md sections 10.5 and 10.6), against the vectors of
// proto/manager_test_vectors.json (computed by tests/proto/manager_vectors.py from the text):
// the rendezvous order, a WELCOME listing managers, a RESTART with a command id and its ACK; and
// the activation answer's manager list.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "proto/activation_message.h"
#include "proto/encoding.h"
#include "proto/manager_command.h"
#include "proto/manager_order.h"
#include "tests/proto/manager_vectors.h"

namespace camtunnel::proto {
namespace {

using nlohmann::json;

const json& Section(const char* name) { return test_util::ManagerVectorSection(name); }

Frame Decode(const std::string& hex) {
  const std::vector<uint8_t> bytes = HexDecode(hex).value_or(std::vector<uint8_t>{});
  std::span<const uint8_t> in = bytes;
  FrameDecoder decoder;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kFrame);
  EXPECT_TRUE(in.empty());
  return frame;
}

TEST(ManagerOrderVectors, ScoresAndOrder) {
  for (const json& v : Section("manager_order")) {
    const std::string agent = v["agent_id"];
    const std::vector<std::string> urls = v["urls"];
    for (size_t i = 0; i < urls.size(); ++i) {
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx",
                    static_cast<unsigned long long>(ManagerOrderScore(agent, urls[i])));
      EXPECT_EQ(hex, v["scores"][i].get<std::string>()) << agent << " " << urls[i];
    }
    EXPECT_EQ(OrderManagers(agent, urls), v["order"].get<std::vector<std::string>>()) << agent;
  }
}

TEST(ManagerOrderVectors, WelcomeCarriesTheList) {
  const json& v = Section("manager_order")[0];
  const Frame welcome = Decode(v["welcome"]);
  ASSERT_TRUE(welcome.Valid());
  std::vector<std::string> managers;
  for (const Field& f : welcome.fields()) {
    if (f.tag == static_cast<uint8_t>(Tag::kManager)) {
      managers.emplace_back(reinterpret_cast<const char*>(f.value.data()), f.value.size());
    }
  }
  EXPECT_EQ(managers, v["welcome_managers"].get<std::vector<std::string>>());
  EXPECT_EQ(welcome.U32(Tag::kReconnectWindowMs), 10000u);
}

TEST(ManagerOrder, SpreadsEvenlyAndMovesOnlyTheDeadManagersAgents) {
  const std::vector<std::string> four = {"https://m1:7443", "https://m2:7443", "https://m3:7443",
                                         "https://m4:7443"};
  const std::vector<std::string> three = {"https://m1:7443", "https://m2:7443", "https://m4:7443"};
  std::map<std::string, int> first;
  int moved_elsewhere = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string agent = "cam-" + std::to_string(i);
    const std::string before = OrderManagers(agent, four).front();
    ++first[before];
    const std::string after = OrderManagers(agent, three).front();
    // Only agents of the removed manager change; they take their second choice.
    if (before != "https://m3:7443") {
      EXPECT_EQ(after, before);
    } else {
      EXPECT_EQ(after, OrderManagers(agent, four)[1]);
      ++moved_elsewhere;
    }
  }
  for (const auto& [url, n] : first) {
    EXPECT_GT(n, 850) << url;  // 1000 each on average
    EXPECT_LT(n, 1150) << url;
  }
  EXPECT_EQ(moved_elsewhere, first["https://m3:7443"]);
}

TEST(ManagerOrder, DropsDuplicates) {
  const std::vector<std::string> urls = {"https://a:1", "https://b:1", "https://a:1"};
  EXPECT_EQ(OrderManagers("cam-1", urls).size(), 2u);
}

TEST(CommandVectors, RestartWithIdAndItsAck) {
  const json& v = Section("commands")[0];
  const uint64_t id = v["command_id"];
  EXPECT_EQ(v["capability"].get<uint32_t>(), kCapCommandAck);
  const Frame restart = Decode(v["restart"]);
  ASSERT_TRUE(restart.Valid());
  EXPECT_EQ(CommandIdOf(restart), id);
  EXPECT_EQ(
      HexEncode(
          BuildCommand(FrameType::kRestart, "restart requested by the operator", id).Finish()),
      v["restart"].get<std::string>());
  EXPECT_EQ(HexEncode(BuildAck(id, v["ack_text"].get<std::string>()).Finish()),
            v["ack"].get<std::string>());
  const std::optional<CommandAck> ack = ParseAck(Decode(v["ack"]));
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->command_id, id);
  EXPECT_EQ(ack->outcome, kAckDone);
}

TEST(Commands, ZeroIdIsNoIdAndAnAckNeedsOne) {
  EXPECT_EQ(CommandIdOf(Decode(HexEncode(BuildCommand(FrameType::kRestart, "r", 0).Finish()))), 0u);
  // A command_id of zero is malformed (ids start at 1).
  FrameBuilder zero(FrameType::kAck);
  zero.AddU64(Tag::kCommandId, 0);
  EXPECT_FALSE(Decode(HexEncode(zero.Finish())).Valid());
  FrameBuilder no_id(FrameType::kAck);
  no_id.AddText(Tag::kText, "done");
  EXPECT_FALSE(ParseAck(Decode(HexEncode(no_id.Finish()))));
}

TEST(ActivationAnswer, KeepsTheManagersOfItsScheme) {
  std::string error;
  auto r = ParseActivationResult(
      R"({"agent_id":"sn-1","manager_url":"https://m1:7443",)"
      R"("manager_urls":"https://m1:7443 http://m2:7080 https://m3:7443 ftp://x"})",
      &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->manager_urls, (std::vector<std::string>{"https://m1:7443", "https://m3:7443"}));
  // An old answer (no list) and a list without a usable manager_url.
  r = ParseActivationResult(R"({"agent_id":"sn-1","manager_url":"https://m1:7443"})", &error);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->manager_urls.empty());
  r = ParseActivationResult(R"({"agent_id":"sn-1","manager_urls":"https://m1:7443"})", &error);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->manager_urls.empty());
}

}  // namespace
}  // namespace camtunnel::proto
