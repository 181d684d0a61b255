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

TEST(ReportMergeTest, RejectsAReportWithoutHistograms) {
  json r = Report(1, 1, Opens(), true);
  r.erase("histograms");
  EXPECT_FALSE(MergeReports({r}).ok());
  EXPECT_FALSE(MergeReports({}).ok());
}

}  // namespace
}  // namespace camtunnel::agentsim
