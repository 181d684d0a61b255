#include "agentsim/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/flags/reflection.h"

namespace camtunnel::agentsim {
namespace {

// Each command line starts from the flags' defaults: they are absl flags, global to the process.
absl::StatusOr<Options> Parse(std::vector<std::string> args) {
  absl::FlagSaver restore_defaults_afterwards;
  args.insert(args.begin(), "camtunnel-agentsim");
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  return ParseOptions(static_cast<int>(argv.size()), argv.data());
}

const std::vector<std::string> kBase = {"--gateway_agent", "127.0.0.1:8443", "--plain",
                                        "--streamer_keys", "keys"};

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
      With("steady", {"--agent_prefix", "Cam-"}),
      With("steady", {"--sources", "127.0.0.9-127.0.0.2"}),
      With("steady", {"--camera_fault", "melt"}),
      With("steady", {"--gop", "1"}),
      With("steady", {"--bogus"}),
      With("steady", {"--duration"}),
      {"steady", "--gateway_agent", "127.0.0.1:0", "--plain", "--streamer_keys", "k"},
      {"steady", "--gateway_agent", "127.0.0.1:1", "--tls", "--streamer_keys", "k"},
      {"steady", "--gateway_agent", "127.0.0.1:1", "--plain"},
  };
  for (const auto& args : bad) {
    EXPECT_FALSE(Parse(args).ok()) << args[0] << " " << (args.size() > 6 ? args[6] : "");
  }
}

TEST(OptionsTest, ErrorsNameTheFlagAndWhatIsWanted) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"steady", "--plain", "--streamer_keys", "k"}, "--gateway_agent is required"},
      {{"steady", "--gateway_agent", "127.0.0.1:1", "--plain"}, "--streamer_keys is required"},
      {With("steady", {"--agents", "0"}), "--agents: 0 is outside [1, "},
      {With("steady", {"--agents", "many"}), "--agents: 'many'"},
      {With("steady", {"--duration"}), "--duration: needs a value"},
      {With("steady", {"--bogus"}), "unknown flag --bogus"},
      {With("steady", {"--gateway-agent", "127.0.0.1:1"}), "unknown flag --gateway-agent"},
      {With("steady", {"--noagents"}), "unknown flag --noagents"},
      {With("steady", {"--tls"}), "--tls and --plain exclude each other"},
      {With("steady", {"--streams", "5"}), "--frontend ADDR is required"},
      {With("steady", {"--camera_fault", "melt"}), "--camera_fault: 'melt'"},
      {With("steady", {"--storm_trigger", "wind"}), "--storm_trigger: 'wind'"},
      {With("steady", {"--bitrate", "1"}), "--bitrate: '1': want 8k..10G"},
      {With("steady", {"--snapshot_size", "8"}), "--snapshot_size: '8'"},
      {With("steady", {"--fps", "0"}), "--fps"},
      {With("steady", {"--key_id", "bad key"}), "--key_id"},
      {With("steady", {"--gateway_pid", "0"}), "--gateway_pid"},
      {With("open-rate", {"--frontend", "127.0.0.1:1", "--max_rate", "1"}), "--max_rate"},
      {With("steady", {"stray"}), "unexpected argument 'stray'"},
  };
  for (const auto& [args, message] : cases) {
    auto o = Parse(args);
    ASSERT_FALSE(o.ok()) << message;
    EXPECT_NE(o.status().message().find(message), std::string::npos) << o.status();
  }
}

TEST(OptionsTest, BooleansTakeAbslSpellings) {
  auto o = Parse(With("steady", {"--notls_resume", "--noreconnect_window", "--insecure=true"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_FALSE(o->tls_resume);
  EXPECT_FALSE(o->honour_reconnect_window);
  EXPECT_TRUE(o->insecure);
  auto defaults = Parse(With("steady", {}));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_TRUE(defaults->tls_resume);
  EXPECT_TRUE(defaults->honour_reconnect_window);
  EXPECT_FALSE(defaults->insecure);
  EXPECT_EQ(defaults->agents, 100u);
  EXPECT_EQ(defaults->video.bitrate_bps, 1000000u);
  EXPECT_EQ(defaults->snapshot_bytes, 65536u);
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
                                 "--processes", "1", "--worker", "--agent_index_base", "6"}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->agents, 4u);
  EXPECT_EQ(o->agent_index_base, 6u);
  EXPECT_TRUE(o->worker);
  EXPECT_FALSE(Parse(With("steady", {"--agents", "2", "--processes", "3"})).ok());
  EXPECT_FALSE(Parse(With("steady", {"--processes", "2", "--worker"})).ok());
  EXPECT_TRUE(FlagTakesValue("agents"));
  EXPECT_FALSE(FlagTakesValue("worker"));
  EXPECT_FALSE(FlagTakesValue("tls"));
  EXPECT_FALSE(FlagTakesValue("no-such-flag"));
}

TEST(OptionsTest, ManagedModeTakesTheManagerInsteadOfAGateway) {
  const std::vector<std::string> managed = {"steady",
                                            "--manager_url",
                                            "https://127.0.0.1:7443",
                                            "--factory_master_file",
                                            "master",
                                            "--operator",
                                            "acme",
                                            "--ca",
                                            "gw.crt"};
  auto o = Parse(managed);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->managed());
  EXPECT_EQ(o->operator_id, "acme");
  EXPECT_EQ(o->manager_ca_file, "gw.crt");  // --ca serves the manager too unless told
  EXPECT_TRUE(o->tls);                      // https gateways can be verified
  std::vector<std::string> own_ca = managed;
  own_ca.insert(own_ca.end(), {"--manager_ca_file", "mgr.crt"});
  o = Parse(own_ca);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->manager_ca_file, "mgr.crt");
  EXPECT_FALSE(Parse(With("steady", {})).value().managed());

  auto without = [&](const std::string& flag) {
    std::vector<std::string> a;
    for (size_t i = 0; i < managed.size(); ++i) {
      if (managed[i] == flag) {
        ++i;
      } else {
        a.push_back(managed[i]);
      }
    }
    return a;
  };
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {without("--factory_master_file"), "--factory_master_file"},
      {without("--operator"), "--operator"},
      {without("--ca"), "--manager_ca_file"},
      {{"steady", "--manager_url", "http://127.0.0.1:7443", "--factory_master_file", "m",
        "--operator", "acme", "--ca", "c"},
       "https"},
      {{"steady", "--manager_url", "https://127.0.0.1:7443", "--factory_master_file", "m",
        "--operator", "acme", "--ca", "c", "--streamer_keys", "k"},
       "--streamer_keys"},
  };
  for (const auto& [args, mention] : bad) {
    auto r = Parse(args);
    ASSERT_FALSE(r.ok()) << args[2];
    EXPECT_NE(r.status().message().find(mention), std::string::npos) << r.status();
  }
  // A managed fleet splits over several processes like any other.
  auto split =
      Parse({"steady", "--manager_url", "https://127.0.0.1:7443", "--factory_master_file", "m",
             "--operator", "acme", "--ca", "c", "--processes", "2", "--agents", "10"});
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->processes, 2u);
}

}  // namespace
}  // namespace camtunnel::agentsim
