#include "agentsim/sim_report.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace camtunnel::agentsim {
namespace {

std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json Counts(const ResultCounts& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : c) {
    j[k] = v;
  }
  return j;
}

nlohmann::json ProcJson(const ProcSampler& p, bool series) {
  nlohmann::json j = {{"pid", p.pid()},
                      {"cpu_percent_mean", p.mean_cpu_percent()},
                      {"cpu_percent_max", p.max_cpu_percent()},
                      {"rss_bytes_max", p.max_rss_bytes()},
                      {"rss_bytes_last", p.last_rss_bytes()},
                      {"alive_at_end", p.alive()}};
  if (series) {
    nlohmann::json s = nlohmann::json::array();
    for (const ProcSample& x : p.series()) {
      s.push_back({{"t_s", x.t_s}, {"cpu_percent", x.cpu_percent}, {"rss_bytes", x.rss_bytes}});
    }
    j["samples"] = std::move(s);
  }
  return j;
}

nlohmann::json ManagedJson(const ReportInput& in) {
  const ManagedStats& m = in.stats.managed;
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  uint64_t activated = 0;
  for (const char* k : {"activated", "reactivated"}) {
    if (auto it = m.activations.find(k); it != m.activations.end()) {
      activated += it->second;
    }
  }
  // Achieved rate: successful activations over the span from the first request to the last
  // success (the whole fleet's activation phase).
  const double span_s =
      m.last_activation_ms > m.first_activation_request_ms
          ? static_cast<double>(m.last_activation_ms - m.first_activation_request_ms) / 1000.0
          : 0.0;
  nlohmann::json all_linked = nullptr;
  if (in.managed_all_linked_ms != 0) {
    all_linked = static_cast<double>(in.managed_all_linked_ms - in.managed_start_ms) / 1000.0;
  }
  return {{"manager_url", in.options.manager_url},
          {"operator", in.options.operator_id},
          {"activations",
           {{"requests", m.activation_requests},
            {"by_result", Counts(m.activations)},
            {"succeeded", activated},
            {"per_s", span_s > 0 ? static_cast<double>(activated) / span_s : 0.0},
            {"latency", LatencyJson(m.activation_us)}}},
          {"manager_links",
           {{"attempts", m.link_attempts},
            {"established", m.links_established},
            {"up_at_end_of_load", in.manager_links_at_end_of_load},
            {"time_to_link_all_s", all_linked},
            {"failures", Counts(m.link_failures)},
            {"failovers", m.failovers},
            {"pings_sent", m.pings_sent},
            {"pongs_received", m.pongs_received},
            {"pings_answered", m.pings_answered},
            {"status_sent", m.status_sent}}},
          {"relinks",
           {{"count", m.relinks},
            {"p50_ms", ms(m.relink_us.Percentile(0.50))},
            {"p95_ms", ms(m.relink_us.Percentile(0.95))},
            {"max_ms", ms(m.relink_us.max())}}},
          {"assigns", m.assigns},
          {"assign_errors", Counts(m.assign_errors)},
          {"switches", m.switches},
          {"restarts", m.restarts},
          {"deactivations", m.deactivations},
          {"command_acks", {{"sent", m.acks_sent}, {"duplicates", m.duplicate_commands}}}};
}

}  // namespace

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  return {{"count", h.count()},
          {"p50_ms", ms(h.Percentile(0.50))},
          {"p90_ms", ms(h.Percentile(0.90))},
          {"p99_ms", ms(h.Percentile(0.99))},
          {"p999_ms", ms(h.Percentile(0.999))},
          {"max_ms", ms(h.max())},
          {"mean_ms", h.mean() / 1000.0}};
}

nlohmann::json BuildReport(const ReportInput& in) {
  const Options& o = in.options;
  const SimStats& s = in.stats;
  nlohmann::json r;
  r["tool"] = "camtunnel-agentsim";
  r["scenario"] = std::string(ScenarioName(o.scenario));
  r["date"] = UtcNow();
  r["interrupted"] = in.interrupted;
  r["config"] = {{"gateway_agent", o.gateway_agent_text},
                 {"transport", o.tls ? "tls" : "plain"},
                 {"frontend", o.frontend_text},
                 {"agents", o.agents},
                 {"agent_prefix", o.agent_prefix},
                 {"sources", o.sources.size()},
                 {"duration_s", o.duration_s},
                 {"streams", o.streams},
                 {"bitrate_bps", o.video.bitrate_bps},
                 {"fps", o.video.fps},
                 {"gop", o.video.gop},
                 {"snapshot_rate", o.snapshot_rate},
                 {"snapshot_bytes", o.snapshot_bytes},
                 {"camera_fault", std::string(CameraFaultName(o.camera_fault))},
                 {"fault_every", o.fault_every}};

  const AgentStats& a = s.agents;
  r["agents"] = {{"configured", in.fleet.size()},
                 {"up_at_end_of_load", in.up_at_end_of_load},
                 {"time_to_connect_all_s",
                  in.connect_all_s ? nlohmann::json(*in.connect_all_s) : nlohmann::json(nullptr)},
                 {"connect", LatencyJson(a.connect_us)},
                 {"connect_attempts", a.connect_attempts},
                 {"sessions", a.sessions},
                 {"reconnects", a.reconnects},
                 {"failures", Counts(a.failures)},
                 {"goaways", a.goaways},
                 {"heartbeat_timeouts", a.heartbeat_timeouts},
                 {"pings_sent", a.pings_sent},
                 {"pongs_received", a.pongs_received},
                 {"pings_answered", a.pings_answered},
                 {"status_sent", a.status_sent},
                 {"opens_received", a.opens_received},
                 {"opens_refused", a.opens_refused},
                 {"data_connections", Counts(a.data_connections)},
                 {"tls_handshakes", Counts(a.tls_handshakes)},
                 {"spares", Counts(a.spares)}};

  const MediaStats& m = s.media;
  r["opens"] = {{"total", m.opens_total()},
                {"failed", m.opens_failed()},
                {"by_result", Counts(m.opens)},
                {"latency", LatencyJson(m.open_us)},
                // Each agent's first open cannot find a spare data connection; the later ones
                // may. Both are inside "latency".
                {"latency_first_per_agent", LatencyJson(m.first_open_us)},
                {"latency_later", LatencyJson(m.later_open_us)}};
  r["rtsp_sessions"] = Counts(m.sessions);
  r["snapshots"] = Counts(m.snapshots);
  const double bits = static_cast<double>(m.bytes_received) * 8;
  r["throughput"] = {{"load_s", in.load_s},
                     {"media_bytes_received", m.bytes_received},
                     {"gbit_per_s", in.load_s > 0 ? bits / in.load_s / 1e9 : 0.0},
                     {"camera_bytes_sent", s.cameras.bytes_sent}};
  r["packets_verified"] = m.integrity.packets;
  r["bytes_verified"] = m.integrity.payload_bytes + m.snapshot_bytes_verified;
  r["integrity_errors"] = {{"total", m.integrity.errors()},
                           {"lost", m.integrity.lost},
                           {"duplicate", m.integrity.duplicate},
                           {"reordered", m.integrity.reordered},
                           {"corrupt", m.integrity.corrupt}};
  const CameraStats& c = s.cameras;
  r["cameras"] = {{"rtsp_sessions", c.rtsp_sessions},    {"rtsp_requests", c.rtsp_requests},
                  {"http_requests", c.http_requests},    {"frames_sent", c.frames_sent},
                  {"frames_skipped", c.frames_skipped},  {"packets_sent", c.packets_sent},
                  {"faults_injected", c.faults_injected}};
  nlohmann::json proc = nlohmann::json::object();
  if (in.self != nullptr) {
    proc["agentsim"] = ProcJson(*in.self, false);
    proc["agentsim"]["connect_phase_cpu_s"] = in.connect_cpu_s;
  }
  if (in.gateway != nullptr) {
    proc["gateway"] = ProcJson(*in.gateway, true);
  }
  r["process"] = std::move(proc);
  if (o.managed()) {
    r["managed"] = ManagedJson(in);
  }
  r["scenario_detail"] = in.scenario;
  // Raw histograms, so reports of several processes merge exactly (report_merge.h).
  r["histograms"] = {{"connect_us", a.connect_us.ToJson()},
                     {"open_us", m.open_us.ToJson()},
                     {"first_open_us", m.first_open_us.ToJson()},
                     {"later_open_us", m.later_open_us.ToJson()}};
  if (o.managed()) {
    r["histograms"]["activation_us"] = s.managed.activation_us.ToJson();
    r["histograms"]["relink_us"] = s.managed.relink_us.ToJson();
  }
  r["result"] = m.integrity.errors() == 0 ? "pass" : "integrity_errors";
  return r;
}

std::string HumanSummary(const nlohmann::json& r, const std::string& scenario_summary) {
  const auto& a = r["agents"];
  const auto& o = r["opens"];
  const auto& lat = o["latency"];
  const auto& ie = r["integrity_errors"];
  std::string out = absl::StrCat("camtunnel-agentsim ", r["scenario"].get<std::string>(), " (",
                                 r["config"]["transport"].get<std::string>());
  if (r["config"].contains("processes")) {
    absl::StrAppend(&out, ", ", r["config"]["processes"].get<uint64_t>(), " processes");
  }
  absl::StrAppend(&out, ")\n");
  absl::StrAppend(&out, "  agents      ", a["up_at_end_of_load"].get<uint64_t>(), "/",
                  a["configured"].get<uint64_t>(), " up; all connected in ",
                  a["time_to_connect_all_s"].is_null()
                      ? std::string("(never)")
                      : absl::StrFormat("%.2f s", a["time_to_connect_all_s"].get<double>()),
                  "; ", a["reconnects"].get<uint64_t>(), " reconnects, ",
                  a["connect_attempts"].get<uint64_t>(), " attempts\n");
  absl::StrAppend(&out, "  opens       ", o["total"].get<uint64_t>(), " (",
                  o["failed"].get<uint64_t>(), " failed) ", o["by_result"].dump(), "\n");
  absl::StrAppend(&out,
                  absl::StrFormat("  latency     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 "
                                  "%.2f ms, max %.2f ms\n",
                                  lat["p50_ms"].get<double>(), lat["p90_ms"].get<double>(),
                                  lat["p99_ms"].get<double>(), lat["p999_ms"].get<double>(),
                                  lat["max_ms"].get<double>()));
  for (const auto& [key, name] :
       {std::pair{"latency_first_per_agent", "first/agent"}, std::pair{"latency_later", "later"}}) {
    const auto& part = o[key];
    if (part["count"].get<uint64_t>() > 0) {
      absl::StrAppend(&out,
                      absl::StrFormat("  %-11s %d opens, p50 %.2f ms, p99 %.2f ms\n", name,
                                      part["count"].get<uint64_t>(), part["p50_ms"].get<double>(),
                                      part["p99_ms"].get<double>()));
    }
  }
  absl::StrAppend(&out, "  rtsp        ", r["rtsp_sessions"].dump(), "\n");
  absl::StrAppend(&out, "  snapshots   ", r["snapshots"].dump(), "\n");
  absl::StrAppend(&out, absl::StrFormat("  throughput  %.3f Gbit/s over %.1f s; %d bytes verified "
                                        "(%d RTP packets)\n",
                                        r["throughput"]["gbit_per_s"].get<double>(),
                                        r["throughput"]["load_s"].get<double>(),
                                        r["bytes_verified"].get<uint64_t>(),
                                        r["packets_verified"].get<uint64_t>()));
  absl::StrAppend(&out, "  integrity   ", ie["total"].get<uint64_t>(), " errors (lost ",
                  ie["lost"].get<uint64_t>(), ", duplicate ", ie["duplicate"].get<uint64_t>(),
                  ", reordered ", ie["reordered"].get<uint64_t>(), ", corrupt ",
                  ie["corrupt"].get<uint64_t>(), ")\n");
  if (r["process"].contains("agentsim")) {
    const auto& p = r["process"]["agentsim"];
    absl::StrAppend(&out, absl::StrFormat("  agentsim    cpu %.1f%% mean under load (100%% = one "
                                          "core), %.2f s while connecting; rss %.1f MiB max\n",
                                          p["cpu_percent_mean"].get<double>(),
                                          p["connect_phase_cpu_s"].get<double>(),
                                          p["rss_bytes_max"].get<double>() / 1048576.0));
  }
  if (r["process"].contains("gateway")) {
    const auto& p = r["process"]["gateway"];
    absl::StrAppend(
        &out,
        absl::StrFormat("  gateway     cpu %.1f%% mean, %.1f%% max, rss %.1f MiB max\n",
                        p["cpu_percent_mean"].get<double>(), p["cpu_percent_max"].get<double>(),
                        p["rss_bytes_max"].get<double>() / 1048576.0));
  }
  if (r.contains("managed")) {
    const auto& m = r["managed"];
    const auto& links = m["manager_links"];
    const auto& relinks = m["relinks"];
    absl::StrAppend(
        &out,
        absl::StrFormat("  activation  %d ok of %d requests, %.1f/s %s\n",
                        m["activations"]["succeeded"].get<uint64_t>(),
                        m["activations"]["requests"].get<uint64_t>(),
                        m["activations"]["per_s"].get<double>(),
                        m["activations"]["by_result"].dump()),
        absl::StrFormat("  manager     %d links up at the end of load, all linked in %s; %d "
                        "assigns, %d relinks (p50 %.0f ms, p95 %.0f ms, max %.0f ms)\n",
                        links["up_at_end_of_load"].get<uint64_t>(),
                        links["time_to_link_all_s"].is_null()
                            ? std::string("(never)")
                            : absl::StrFormat("%.2f s", links["time_to_link_all_s"].get<double>()),
                        m["assigns"].get<uint64_t>(), relinks["count"].get<uint64_t>(),
                        relinks["p50_ms"].get<double>(), relinks["p95_ms"].get<double>(),
                        relinks["max_ms"].get<double>()));
  }
  if (!scenario_summary.empty()) {
    absl::StrAppend(&out, "  ", scenario_summary, "\n");
  }
  absl::StrAppend(&out, "  result      ", r["result"].get<std::string>(), "\n");
  return out;
}

}  // namespace camtunnel::agentsim
