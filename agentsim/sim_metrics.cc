#include "agentsim/sim_metrics.h"

#include <vector>

#include "metrics/exposition.h"
#include "runtime/log.h"

namespace camtunnel::agentsim {
namespace {

using metrics::FamilyBuilder;
using prometheus::MetricType;

prometheus::MetricFamily One(const std::string& name, const std::string& help, MetricType type,
                             double value) {
  FamilyBuilder b(name, help, type);
  if (type == MetricType::Counter) {
    b.Counter({}, value);
  } else {
    b.Gauge({}, value);
  }
  return b.Take();
}

prometheus::MetricFamily ByLabel(const std::string& name, const std::string& help,
                                 const std::string& label, const ResultCounts& counts) {
  FamilyBuilder b(name, help, MetricType::Counter);
  for (const auto& [k, v] : counts) {
    b.Counter({{label, k}}, static_cast<double>(v));
  }
  return b.Take();
}

prometheus::MetricFamily Seconds(const std::string& name, const std::string& help,
                                 const LatencyHistogram& h) {
  const std::vector<double> bounds = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                      0.2,   0.5,   1,     2,    5,    10};
  std::vector<uint64_t> counts;
  uint64_t below = 0;
  for (double b : bounds) {
    const uint64_t at = h.CountAtOrBelow(static_cast<uint64_t>(b * 1e6));
    counts.push_back(at - below);
    below = at;
  }
  counts.push_back(h.count() - below);
  FamilyBuilder f(name, help, MetricType::Histogram);
  f.Histogram({}, bounds, counts, h.mean() * static_cast<double>(h.count()) / 1e6);
  return f.Take();
}

}  // namespace

std::string RenderMetrics(const SimStats& s, const Fleet& fleet, const IntegrityCounts& live,
                          bool managed) {
  const IntegrityCounts& ic = s.media.integrity;
  std::vector<prometheus::MetricFamily> f;
  f.push_back(One("camtunnel_agentsim_agents", "Simulated agents", MetricType::Gauge,
                  static_cast<double>(fleet.size())));
  f.push_back(One("camtunnel_agentsim_agents_up", "Agents with an established control session",
                  MetricType::Gauge, static_cast<double>(fleet.up())));
  f.push_back(One("camtunnel_agentsim_agent_connect_attempts_total", "Control connection attempts",
                  MetricType::Counter, static_cast<double>(s.agents.connect_attempts)));
  f.push_back(One("camtunnel_agentsim_agent_reconnects_total",
                  "Control sessions established after an agent's first", MetricType::Counter,
                  static_cast<double>(s.agents.reconnects)));
  f.push_back(ByLabel("camtunnel_agentsim_agent_failures_total",
                      "Control connection attempts or sessions that ended badly", "reason",
                      s.agents.failures));
  f.push_back(ByLabel("camtunnel_agentsim_data_connections_total",
                      "Data connections opened on OPEN, by result", "result",
                      s.agents.data_connections));
  f.push_back(ByLabel("camtunnel_agentsim_opens_total",
                      "Media requests through the frontend, by how their open resolved", "result",
                      s.media.opens));
  f.push_back(Seconds("camtunnel_agentsim_open_latency_seconds",
                      "Media request start to the camera's first answer", s.media.open_us));
  f.push_back(One("camtunnel_agentsim_rtsp_sessions", "RTSP sessions in progress",
                  MetricType::Gauge, static_cast<double>(s.media.rtsp_active)));
  f.push_back(ByLabel("camtunnel_agentsim_rtsp_sessions_ended_total",
                      "RTSP sessions that ended, by outcome", "outcome", s.media.sessions));
  f.push_back(ByLabel("camtunnel_agentsim_snapshots_total", "Snapshot requests, by outcome",
                      "outcome", s.media.snapshots));
  f.push_back(One("camtunnel_agentsim_media_received_bytes_total",
                  "Bytes read from the gateway's frontend", MetricType::Counter,
                  static_cast<double>(s.media.bytes_received)));
  f.push_back(One("camtunnel_agentsim_verified_bytes_total",
                  "Payload bytes checked intact (finished RTSP sessions and snapshots)",
                  MetricType::Counter,
                  static_cast<double>(ic.payload_bytes + s.media.snapshot_bytes_verified)));
  FamilyBuilder errors("camtunnel_agentsim_integrity_errors_total",
                       "Integrity errors found by the media side (finished sessions)",
                       MetricType::Counter);
  errors.Counter({{"kind", "lost"}}, static_cast<double>(ic.lost))
      .Counter({{"kind", "duplicate"}}, static_cast<double>(ic.duplicate))
      .Counter({{"kind", "reordered"}}, static_cast<double>(ic.reordered))
      .Counter({{"kind", "corrupt"}}, static_cast<double>(ic.corrupt));
  f.push_back(errors.Take());
  // A gauge, not a counter: a live "lost" can still turn into "reordered" when the packet
  // arrives late; the session's final counts move to the counter above when it ends.
  FamilyBuilder live_errors("camtunnel_agentsim_live_integrity_errors",
                            "Integrity errors found so far in RTSP sessions still in progress",
                            MetricType::Gauge);
  live_errors.Gauge({{"kind", "lost"}}, static_cast<double>(live.lost))
      .Gauge({{"kind", "duplicate"}}, static_cast<double>(live.duplicate))
      .Gauge({{"kind", "reordered"}}, static_cast<double>(live.reordered))
      .Gauge({{"kind", "corrupt"}}, static_cast<double>(live.corrupt));
  f.push_back(live_errors.Take());
  f.push_back(One("camtunnel_agentsim_live_verified_packets",
                  "RTP packets verified so far in RTSP sessions still in progress",
                  MetricType::Gauge, static_cast<double>(live.packets)));
  FamilyBuilder heartbeats("camtunnel_agentsim_agent_control_messages_total",
                           "Control messages the agents sent or received, by kind",
                           MetricType::Counter);
  heartbeats.Counter({{"kind", "ping_sent"}}, static_cast<double>(s.agents.pings_sent))
      .Counter({{"kind", "pong_received"}}, static_cast<double>(s.agents.pongs_received))
      .Counter({{"kind", "ping_answered"}}, static_cast<double>(s.agents.pings_answered))
      .Counter({{"kind", "status_sent"}}, static_cast<double>(s.agents.status_sent));
  f.push_back(heartbeats.Take());
  if (managed) {
    const ManagedStats& m = s.managed;
    f.push_back(ByLabel("camtunnel_agentsim_activations_total",
                        "Activation requests by answer or failure (managed mode)", "result",
                        m.activations));
    f.push_back(One("camtunnel_agentsim_manager_links_up",
                    "Agents with an established manager link (managed mode)", MetricType::Gauge,
                    static_cast<double>(m.links_up)));
    f.push_back(One("camtunnel_agentsim_manager_links_established_total",
                    "Manager links that reached WELCOME (managed mode)", MetricType::Counter,
                    static_cast<double>(m.links_established)));
    f.push_back(One("camtunnel_agentsim_manager_relinks_total",
                    "Manager links established again after an established one was lost",
                    MetricType::Counter, static_cast<double>(m.relinks)));
    f.push_back(ByLabel("camtunnel_agentsim_manager_link_failures_total",
                        "Manager link attempts or links that ended badly, by reason", "reason",
                        m.link_failures));
    FamilyBuilder commands("camtunnel_agentsim_manager_frames_total",
                           "Frames from the manager the agents acted on, by type",
                           MetricType::Counter);
    commands.Counter({{"type", "assign"}}, static_cast<double>(m.assigns))
        .Counter({{"type", "switch"}}, static_cast<double>(m.switches))
        .Counter({{"type", "restart"}}, static_cast<double>(m.restarts))
        .Counter({{"type", "deactivate"}}, static_cast<double>(m.deactivations));
    f.push_back(commands.Take());
    f.push_back(Seconds("camtunnel_agentsim_manager_relink_seconds",
                        "From the loss of a manager link to the next WELCOME", m.relink_us));
  }
  f.push_back(One("camtunnel_agentsim_camera_sent_bytes_total",
                  "Bytes the simulated cameras wrote into tunnels", MetricType::Counter,
                  static_cast<double>(s.cameras.bytes_sent)));
  f.push_back(One("camtunnel_agentsim_camera_frames_skipped_total",
                  "Frames a camera skipped because its tunnel was backed up", MetricType::Counter,
                  static_cast<double>(s.cameras.frames_skipped)));
  f.push_back(One("camtunnel_log_lines_suppressed_total",
                  "Log lines dropped by the per-cause rate limit.", MetricType::Counter,
                  static_cast<double>(runtime::SuppressedLogLines())));
  return metrics::RenderText(f);
}

}  // namespace camtunnel::agentsim
