#include "agentsim/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace camtunnel::agentsim {
namespace {

absl::StatusOr<Options> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "camtunnel-agentsim");
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  return ParseOptions(static_cast<int>(argv.size()), argv.data());
}

const std::vector<std::string> kBase = {"--gateway-agent", "127.0.0.1:8443", "--plain",
                                        "--streamer-keys", "keys"};

std::vector<std::string> With(std::string scenario, std::vector<std::string> extra) {
  std::vector<std::string> a = {std::move(scenario)};
  a.insert(a.end(), kBase.begin(), kBase.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(OptionsTest, ParsesSteadyWithBothFlagForms) {
  auto o = Parse(With("steady", {"--agents=500", "--streams", "50", "--bitrate", "2M", "--frontend",
                                 "127.0.0.1:8554", "--sources", "127.0.0.2-127.0.0.9"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->agents, 500u);
  EXPECT_EQ(o->streams, 50u);
  EXPECT_EQ(o->video.bitrate_bps, 2000000u);
  EXPECT_EQ(o->sources.size(), 8u);
  EXPECT_FALSE(o->tls);
}

TEST(OptionsTest, RejectsWhatCannotWork) {
  const std::vector<std::vector<std::string>> bad = {
      {"nosuch"},
      With("steady", {"--agents", "0"}),
      With("steady", {"--agents", "1.5"}),
      With("steady", {"--streams", "5"}),  // no --frontend
      With("steady", {"--agent-prefix", "Cam-"}),
      With("steady", {"--sources", "127.0.0.9-127.0.0.2"}),
      With("steady", {"--camera-fault", "melt"}),
      With("steady", {"--gop", "1"}),
      With("steady", {"--bogus"}),
      With("steady", {"--duration"}),
      {"steady", "--gateway-agent", "127.0.0.1:0", "--plain", "--streamer-keys", "k"},
      {"steady", "--gateway-agent", "127.0.0.1:1", "--tls", "--streamer-keys", "k"},
      {"steady", "--gateway-agent", "127.0.0.1:1", "--plain"},
  };
  for (const auto& args : bad) {
    EXPECT_FALSE(Parse(args).ok()) << args[0] << " " << (args.size() > 6 ? args[6] : "");
  }
}

TEST(OptionsTest, ScenarioDefaults) {
  auto churn = Parse(With("churn", {}));
  ASSERT_TRUE(churn.ok());
  EXPECT_EQ(churn->churn_rate, 5);
  auto rate = Parse(With("open-rate", {"--frontend", "127.0.0.1:8554"}));
  ASSERT_TRUE(rate.ok());
  EXPECT_EQ(rate->snapshot_bytes, 1024u);
}

TEST(OptionsTest, ScaledSizes) {
  EXPECT_EQ(*ParseScaled("64k"), 64000u);
  EXPECT_EQ(*ParseScaled("1.5G"), 1500000000u);
  EXPECT_FALSE(ParseScaled("lots").ok());
}

TEST(OptionsTest, ProcessesSplitTheFleetAndLaterFlagsOverrideEarlierOnes) {
  // The coordinator relies on the last occurrence winning when it appends a worker's share.
  auto o = Parse(With("steady", {"--agents", "10", "--processes", "2", "--agents", "4",
                                 "--processes", "1", "--worker", "--agent-index-base", "6"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->agents, 4u);
  EXPECT_EQ(o->agent_index_base, 6u);
  EXPECT_TRUE(o->worker);
  EXPECT_FALSE(Parse(With("steady", {"--agents", "2", "--processes", "3"})).ok());
  EXPECT_FALSE(Parse(With("steady", {"--processes", "2", "--worker"})).ok());
  EXPECT_TRUE(FlagTakesValue("agents"));
  EXPECT_FALSE(FlagTakesValue("worker"));
  EXPECT_FALSE(FlagTakesValue("no-such-flag"));
}

}  // namespace
}  // namespace camtunnel::agentsim
