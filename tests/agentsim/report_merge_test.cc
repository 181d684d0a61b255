#include "agentsim/report_merge.h"

#include <gtest/gtest.h>

#include "agentsim/latency_histogram.h"
#include "agentsim/sim_report.h"

namespace camtunnel::agentsim {
namespace {

using nlohmann::json;

// The parts of a BuildReport document the merge reads.
// `opens` split in two: each agent's first open and the later ones.
struct Opens {
  LatencyHistogram all;
  LatencyHistogram first;
  LatencyHistogram later;
  void Record(uint64_t us, bool is_first) {
    all.Record(us);
    (is_first ? first : later).Record(us);
  }
};

json Report(uint64_t agents, double connect_s, const Opens& opens, bool recovered) {
  LatencyHistogram connect;
  connect.Record(1000);
  return {
      {"interrupted", false},
      {"config", {{"agents", agents}, {"streams", 2}, {"snapshot_rate", 1.5}, {"sources", 1}}},
      {"agents", {{"configured", agents}, {"time_to_connect_all_s", connect_s}, {"reconnects", 3}}},
      {"opens", {{"total", opens.all.count()}, {"by_result", {{"ok", opens.all.count()}}}}},
      {"rtsp_sessions", {{"completed", 2}}},
      {"snapshots", json::object()},
      {"throughput", {{"load_s", 2.0}, {"media_bytes_received", 1000}}},
      {"integrity_errors", {{"total", 0}, {"lost", 0}}},
      {"cameras", {{"frames_sent", 10}}},
      {"packets_verified", 5},
      {"bytes_verified", 500},
      {"process", {{"agentsim", {{"pid", 1}, {"cpu_percent_mean", 10.0}}}}},
      {"scenario_detail", {{"recovered", recovered}, {"recovery_s", connect_s}}},
      {"histograms",
       {{"connect_us", connect.ToJson()},
        {"open_us", opens.all.ToJson()},
        {"first_open_us", opens.first.ToJson()},
        {"later_open_us", opens.later.ToJson()}}}};
}

TEST(ReportMergeTest, SumsCountsMaxesTimesAndMergesLatencyExactly) {
  Opens a;
  Opens b;
  Opens all;
  for (uint64_t v = 1; v <= 1000; ++v) {
    (v % 3 == 0 ? a : b).Record(v * 37, v <= 60);
    all.Record(v * 37, v <= 60);
  }
  auto m = MergeReports({Report(100, 1.5, a, true), Report(50, 2.5, b, false)});
  ASSERT_TRUE(m.ok()) << m.status();
  const json& r = *m;
  EXPECT_EQ(r["config"]["agents"], 150u);
  EXPECT_EQ(r["config"]["streams"], 4u);
  EXPECT_DOUBLE_EQ(r["config"]["snapshot_rate"].get<double>(), 3.0);
  EXPECT_EQ(r["config"]["processes"], 2u);
  EXPECT_EQ(r["agents"]["configured"], 150u);
  EXPECT_EQ(r["agents"]["reconnects"], 6u);
  EXPECT_DOUBLE_EQ(r["agents"]["time_to_connect_all_s"].get<double>(), 2.5);
  EXPECT_EQ(r["opens"]["by_result"]["ok"], 1000u);
  EXPECT_EQ(r["rtsp_sessions"]["completed"], 4u);
  EXPECT_EQ(r["packets_verified"], 10u);
  EXPECT_EQ(r["bytes_verified"], 1000u);
  EXPECT_DOUBLE_EQ(r["throughput"]["load_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(r["throughput"]["gbit_per_s"].get<double>(), 2000 * 8 / 2.0 / 1e9);
  // As if one process had seen them all, the split included.
  EXPECT_EQ(r["opens"]["latency"], LatencyJson(all.all));
  EXPECT_EQ(r["opens"]["latency_first_per_agent"], LatencyJson(all.first));
  EXPECT_EQ(r["opens"]["latency_later"], LatencyJson(all.later));
  EXPECT_EQ(r["opens"]["latency_first_per_agent"]["count"], 60u);
  EXPECT_EQ(r["agents"]["connect"]["count"], 2u);
  EXPECT_FALSE(r["scenario_detail"]["recovered"].get<bool>());
  EXPECT_DOUBLE_EQ(r["scenario_detail"]["recovery_s"].get<double>(), 2.5);
  EXPECT_EQ(r["scenario_detail"]["workers"].size(), 2u);
  EXPECT_DOUBLE_EQ(r["process"]["agentsim"]["cpu_percent_mean"].get<double>(), 20.0);
  EXPECT_EQ(r["result"], "pass");
}

TEST(ReportMergeTest, ManagedSectionsAddUpAndTheirLatenciesMergeExactly) {
  Opens none;
  LatencyHistogram act_a, act_b, act_all, relink_a, relink_b, relink_all;
  for (uint64_t v = 1; v <= 600; ++v) {
    (v % 2 == 0 ? act_a : act_b).Record(v * 100);
    act_all.Record(v * 100);
    (v % 5 == 0 ? relink_a : relink_b).Record(v * 1000);
    relink_all.Record(v * 1000);
  }
  auto managed = [](uint64_t succeeded, double per_s, double all_linked_s, uint64_t relinks) {
    return json{
        {"manager_url", "https://m:1"},
        {"activations", {{"succeeded", succeeded}, {"per_s", per_s}}},
        {"manager_links", {{"time_to_link_all_s", all_linked_s}}},
        {"relinks", {{"count", relinks}, {"p50_ms", 1.0}, {"p95_ms", 1.0}, {"max_ms", 1.0}}},
        {"restarts", 1}};
  };
  json a = Report(300, 1.0, none, true);
  json b = Report(300, 1.0, none, true);
  a["managed"] = managed(300, 100.0, 4.0, 120);
  b["managed"] = managed(300, 150.0, 6.0, 480);
  a["histograms"]["activation_us"] = act_a.ToJson();
  a["histograms"]["relink_us"] = relink_a.ToJson();
  b["histograms"]["activation_us"] = act_b.ToJson();
  b["histograms"]["relink_us"] = relink_b.ToJson();
  auto m = MergeReports({a, b});
  ASSERT_TRUE(m.ok()) << m.status();
  const json& r = (*m)["managed"];
  EXPECT_EQ(r["activations"]["succeeded"], 600u);
  EXPECT_DOUBLE_EQ(r["activations"]["per_s"].get<double>(), 250.0);  // workers run side by side
  EXPECT_DOUBLE_EQ(r["manager_links"]["time_to_link_all_s"].get<double>(), 6.0);
  EXPECT_EQ(r["relinks"]["count"], 600u);
  EXPECT_EQ(r["restarts"], 2u);
  EXPECT_EQ(r["manager_url"], "https://m:1");
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  EXPECT_DOUBLE_EQ(r["relinks"]["p50_ms"].get<double>(), ms(relink_all.Percentile(0.50)));
  EXPECT_DOUBLE_EQ(r["relinks"]["p95_ms"].get<double>(), ms(relink_all.Percentile(0.95)));
  EXPECT_DOUBLE_EQ(r["relinks"]["max_ms"].get<double>(), ms(relink_all.max()));
  EXPECT_EQ(r["activations"]["latency"], LatencyJson(act_all));
  // A managed report that lost its histograms cannot be merged exactly: refused.
  b["histograms"].erase("relink_us");
  EXPECT_FALSE(MergeReports({a, b}).ok());
}

TEST(ReportMergeTest, RejectsAReportWithoutHistograms) {
  json r = Report(1, 1, Opens(), true);
  r.erase("histograms");
  EXPECT_FALSE(MergeReports({r}).ok());
  EXPECT_FALSE(MergeReports({}).ok());
}

}  // namespace
}  // namespace camtunnel::agentsim
