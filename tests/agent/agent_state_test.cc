// The managed agent's state file: round trip, atomic replacement, strict reading, wiping.
#include "agent/agent_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace camtunnel::agent {
namespace {

class AgentStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/agent-state-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/state";
    state_.agent_id = "sn-1";
    state_.manager_url = "https://mgr:7443";
    state_.secret[0] = 0x5a;
    state_.last_streamer = "https://gw1:8443";
    state_.last_good_unix_s = 1767225600;
    state_.sealed_streamers = {std::vector<uint8_t>(120, 0xab), std::vector<uint8_t>(3, 1)};
    state_.manager_urls = {"https://mgr:7443", "https://mgr2:7443"};
    state_.last_command_id = 42;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_, path_;
  AgentState state_;
};

TEST_F(AgentStateTest, RoundTripsPrivately) {
  std::string error;
  ASSERT_TRUE(SaveAgentState(path_, state_, &error)) << error;
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  auto loaded = LoadAgentState(path_, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->agent_id, "sn-1");
  EXPECT_EQ(loaded->secret, state_.secret);
  EXPECT_EQ(loaded->last_streamer, "https://gw1:8443");
  EXPECT_EQ(loaded->last_good_unix_s, 1767225600);
  EXPECT_EQ(loaded->sealed_streamers, state_.sealed_streamers);
  EXPECT_EQ(loaded->manager_urls, state_.manager_urls);
  EXPECT_EQ(loaded->last_command_id, 42u);
}

// The largest state there can be (8 Streamers, 16 managers of 255 bytes) fits the file limit.
TEST_F(AgentStateTest, FullListsFit) {
  state_.sealed_streamers.assign(8, std::vector<uint8_t>(300, 0xcd));
  state_.manager_urls.clear();
  for (int i = 0; i < 16; ++i) {
    const std::string label(60, 'm');
    state_.manager_urls.push_back("https://" + label + "." + label + "." + label + ".m" +
                                  std::to_string(i) + ".example:7443");
  }
  std::string error;
  ASSERT_TRUE(SaveAgentState(path_, state_, &error)) << error;
  auto loaded = LoadAgentState(path_, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->manager_urls.size(), 16u);
}

TEST_F(AgentStateTest, MissingFileIsNotAnError) {
  std::string error = "x";
  EXPECT_FALSE(LoadAgentState(path_, &error));
  EXPECT_TRUE(error.empty());
}

TEST_F(AgentStateTest, ReplacesAnExistingFile) {
  std::string error;
  ASSERT_TRUE(SaveAgentState(path_, state_, &error));
  state_.manager_url = "https://mgr2:7443";
  ASSERT_TRUE(SaveAgentState(path_, state_, &error));
  EXPECT_EQ(LoadAgentState(path_, &error)->manager_url, "https://mgr2:7443");
}

TEST_F(AgentStateTest, RejectsTruncatedOrForeignContent) {
  std::string error;
  ASSERT_TRUE(SaveAgentState(path_, state_, &error));
  std::string text;
  {
    std::ifstream in(path_);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (const std::string& bad :
       {text.substr(0, text.size() - 1), std::string("hello\n"), text + "extra=1\n",
        std::string("camtunnel-agent-state 1\nagent_id=sn-1\n")}) {
    std::ofstream(path_, std::ios::trunc) << bad;
    EXPECT_FALSE(LoadAgentState(path_, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST_F(AgentStateTest, WipeRemovesTheFile) {
  std::string error;
  ASSERT_TRUE(SaveAgentState(path_, state_, &error));
  ASSERT_TRUE(WipeAgentState(path_, &error)) << error;
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(WipeAgentState(path_, &error));  // idempotent
}

}  // namespace
}  // namespace camtunnel::agent
