#include "agentsim/report_merge.h"

#include <algorithm>
#include <array>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agentsim/latency_histogram.h"
#include "agentsim/sim_report.h"

namespace camtunnel::agentsim {
namespace {

using nlohmann::json;

// A key whose value is a time: the slowest worker's, not a sum ("_per_s" is a rate: summed).
bool IsDuration(const std::string& key) {
  return key != "per_s" && !absl::EndsWith(key, "_per_s") &&
         (absl::EndsWith(key, "_s") || absl::EndsWith(key, "_ms"));
}

// Each worker's own CPU and memory: together, what the whole fleet cost on this machine.
json AddProcess(const json& a, const json& b) {
  json out = a;
  for (const char* k : {"cpu_percent_mean", "cpu_percent_max", "rss_bytes_max", "rss_bytes_last",
                        "connect_phase_cpu_s"}) {
    out[k] = a.value(k, 0.0) + b.value(k, 0.0);
  }
  out["alive_at_end"] = a.value("alive_at_end", false) && b.value("alive_at_end", false);
  out["pids"] = a.contains("pids") ? a["pids"] : json::array({a.value("pid", 0)});
  out["pids"].push_back(b.value("pid", 0));
  out.erase("pid");
  return out;
}

// Numbers summed (durations maxed), flags and-ed, text kept when all agree, objects merged key
// by key; anything else (arrays, mixed types) is the first report's. A null anywhere (a time
// that never came, like a storm that did not recover) stays null.
json Combine(const json& a, const json& b, const std::string& key) {
  if (a.is_null() || b.is_null()) {
    return nullptr;
  }
  if (a.is_number_unsigned() && b.is_number_unsigned() && !IsDuration(key)) {
    return a.get<uint64_t>() + b.get<uint64_t>();
  }
  if (a.is_number() && b.is_number()) {
    return IsDuration(key) ? std::max(a.get<double>(), b.get<double>())
                           : a.get<double>() + b.get<double>();
  }
  if (a.is_boolean() && b.is_boolean()) {
    return a.get<bool>() && b.get<bool>();
  }
  if (a.is_string() && b.is_string()) {
    return a == b ? a : json(absl::StrCat(a.get<std::string>(), ",", b.get<std::string>()));
  }
  if (a.is_object() && b.is_object()) {
    json out = a;
    for (const auto& [k, v] : b.items()) {
      out[k] = out.contains(k) ? Combine(out[k], v, k) : v;
    }
    return out;
  }
  return a;
}

}  // namespace

absl::StatusOr<json> MergeReports(const std::vector<json>& reports) {
  if (reports.empty()) {
    return absl::InvalidArgumentError("no reports to merge");
  }
  // Every histogram of the reports, by name, merged.
  constexpr std::array<const char*, 4> kHistograms = {"connect_us", "open_us", "first_open_us",
                                                      "later_open_us"};
  std::array<LatencyHistogram, kHistograms.size()> merged;
  for (size_t i = 0; i < reports.size(); ++i) {
    const json& r = reports[i];
    if (!r.contains("histograms")) {
      return absl::InvalidArgumentError(absl::StrCat("report ", i, " has no histograms"));
    }
    for (size_t h = 0; h < kHistograms.size(); ++h) {
      auto one = LatencyHistogram::FromJson(r["histograms"].value(kHistograms[h], json()));
      if (!one) {
        return absl::InvalidArgumentError(
            absl::StrCat("report ", i, ": malformed histogram ", kHistograms[h]));
      }
      merged[h].Merge(*one);
    }
  }

  json m = reports[0];
  json details = json::array();
  details.push_back(reports[0]["scenario_detail"]);
  for (size_t i = 1; i < reports.size(); ++i) {
    const json& r = reports[i];
    for (const char* section : {"agents", "opens", "rtsp_sessions", "snapshots", "throughput",
                                "integrity_errors", "cameras", "scenario_detail", "managed"}) {
      if (m.contains(section) && r.contains(section)) {
        m[section] = Combine(m[section], r[section], section);
      }
    }
    for (const char* count : {"packets_verified", "bytes_verified"}) {
      m[count] = m[count].get<uint64_t>() + r[count].get<uint64_t>();
    }
    m["interrupted"] = m["interrupted"].get<bool>() || r["interrupted"].get<bool>();
    // The workers' shares of the fleet and the load add up to the whole.
    for (const char* knob : {"agents", "streams", "snapshot_rate", "sources"}) {
      m["config"][knob] = Combine(m["config"][knob], r["config"][knob], knob);
    }
    // The gateway is sampled by one worker only.
    if (r["process"].contains("agentsim") && m["process"].contains("agentsim")) {
      m["process"]["agentsim"] = AddProcess(m["process"]["agentsim"], r["process"]["agentsim"]);
    }
    if (r["process"].contains("gateway")) {
      m["process"]["gateway"] = r["process"]["gateway"];
    }
    details.push_back(r["scenario_detail"]);
  }
  m["config"]["processes"] = reports.size();
  m["agents"]["connect"] = LatencyJson(merged[0]);
  m["opens"]["latency"] = LatencyJson(merged[1]);
  m["opens"]["latency_first_per_agent"] = LatencyJson(merged[2]);
  m["opens"]["latency_later"] = LatencyJson(merged[3]);
  m["histograms"] = json::object();
  for (size_t h = 0; h < kHistograms.size(); ++h) {
    m["histograms"][kHistograms[h]] = merged[h].ToJson();
  }
  const double load_s = m["throughput"]["load_s"].get<double>();
  const double bits =
      static_cast<double>(m["throughput"]["media_bytes_received"].get<uint64_t>()) * 8;
  m["throughput"]["gbit_per_s"] = load_s > 0 ? bits / load_s / 1e9 : 0.0;
  m["scenario_detail"]["workers"] = std::move(details);
  if (m.contains("managed")) {
    // Managed mode: its latencies from the merged histograms (Combine took the slowest
    // worker's percentiles; the counts and rates it summed are right).
    LatencyHistogram activation, relink;
    for (const json& r : reports) {
      const json& h = r["histograms"];
      auto a = LatencyHistogram::FromJson(h.value("activation_us", json()));
      auto l = LatencyHistogram::FromJson(h.value("relink_us", json()));
      if (!a || !l) {
        return absl::InvalidArgumentError("a managed report without its histograms");
      }
      activation.Merge(*a);
      relink.Merge(*l);
    }
    m["managed"]["activations"]["latency"] = LatencyJson(activation);
    auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
    m["managed"]["relinks"]["p50_ms"] = ms(relink.Percentile(0.50));
    m["managed"]["relinks"]["p95_ms"] = ms(relink.Percentile(0.95));
    m["managed"]["relinks"]["max_ms"] = ms(relink.max());
    m["histograms"]["activation_us"] = activation.ToJson();
    m["histograms"]["relink_us"] = relink.ToJson();
  }
  m["result"] = m["integrity_errors"]["total"].get<uint64_t>() == 0 ? "pass" : "integrity_errors";
  return m;
}

}  // namespace camtunnel::agentsim
