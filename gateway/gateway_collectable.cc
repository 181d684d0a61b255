#include "gateway/gateway_collectable.h"

#include <string>

#include "metrics/exposition.h"

namespace camtunnel::gateway {

using metrics::FamilyBuilder;
using prometheus::MetricType;

namespace {

template <typename F>
double Sum(const std::vector<const ShardMetrics*>& shards, F f) {
  double total = 0;
  for (const ShardMetrics* s : shards) {
    total += static_cast<double>(f(*s));
  }
  return total;
}

template <size_t N, typename Names, typename F>
prometheus::MetricFamily LabelledCounter(const std::vector<const ShardMetrics*>& shards,
                                         const std::string& name, const std::string& help,
                                         const std::string& label, const Names& names, F cell) {
  FamilyBuilder b(name, help, MetricType::Counter);
  for (size_t i = 0; i < N; ++i) {
    b.Counter({{label, names[i]}}, Sum(shards, [&](const ShardMetrics& s) { return cell(s, i); }));
  }
  return b.Take();
}

template <typename H>
prometheus::MetricFamily HistogramFamily(const std::vector<const ShardMetrics*>& shards,
                                         const std::string& name, const std::string& help, H hist) {
  const auto& bounds_array = hist(*shards.front()).bounds();
  std::vector<double> bounds(bounds_array.begin(), bounds_array.end());
  std::vector<uint64_t> counts(bounds.size() + 1, 0);
  double sum = 0;
  for (const ShardMetrics* s : shards) {
    for (size_t i = 0; i < counts.size(); ++i) {
      counts[i] += hist(*s).Bucket(i);
    }
    sum += hist(*s).SumSeconds();
  }
  FamilyBuilder b(name, help, MetricType::Histogram);
  b.Histogram({}, bounds, counts, sum);
  return b.Take();
}

prometheus::MetricFamily SimpleGauge(const std::string& name, const std::string& help,
                                     double value) {
  FamilyBuilder b(name, help, MetricType::Gauge);
  b.Gauge({}, value);
  return b.Take();
}

prometheus::MetricFamily SimpleCounter(const std::string& name, const std::string& help,
                                       double value) {
  FamilyBuilder b(name, help, MetricType::Counter);
  b.Counter({}, value);
  return b.Take();
}

}  // namespace

std::vector<prometheus::MetricFamily> GatewayCollectable::Collect() const {
  std::vector<prometheus::MetricFamily> f;
  constexpr size_t kAgentResults = static_cast<size_t>(AgentResult::kCount);
  f.push_back(
      SimpleGauge("camtunnel_agents_connected", "Agents with a verified control session.",
                  Sum(shards_, [](const ShardMetrics& s) { return s.agents_connected.Get(); })));
  f.push_back(
      SimpleGauge("camtunnel_agent_connections_unauthenticated",
                  "Agent connections accepted whose handshake has not verified yet.",
                  Sum(shards_, [](const ShardMetrics& s) { return s.unauthenticated.Get(); })));
  {
    FamilyBuilder b("camtunnel_agent_connections_total",
                    "Agent connections by kind and outcome of their upgrade.", MetricType::Counter);
    for (size_t i = 0; i < kAgentResults; ++i) {
      b.Counter(
          {{"kind", "control"}, {"result", kAgentResultNames[i]}},
          Sum(shards_, [&](const ShardMetrics& s) { return s.control_connections[i].Get(); }));
      b.Counter({{"kind", "data"}, {"result", kAgentResultNames[i]}},
                Sum(shards_, [&](const ShardMetrics& s) { return s.data_connections[i].Get(); }));
    }
    f.push_back(b.Take());
  }
  f.push_back(LabelledCounter<static_cast<size_t>(FrameReject::kCount)>(
      shards_, "camtunnel_control_frames_rejected_total",
      "Control frames rejected, by reason (the connection is closed).", "reason", kFrameRejectNames,
      [](const ShardMetrics& s, size_t i) { return s.frames_rejected[i].Get(); }));
  f.push_back(SimpleCounter(
      "camtunnel_sessions_replaced_total",
      "Sessions replaced by a newer authenticated connection of the same agent (flapping).",
      Sum(shards_, [](const ShardMetrics& s) { return s.sessions_replaced.Get(); })));
  f.push_back(SimpleCounter(
      "camtunnel_heartbeat_timeouts_total", "Sessions dropped for missing heartbeats.",
      Sum(shards_, [](const ShardMetrics& s) { return s.heartbeat_timeouts.Get(); })));
  f.push_back(SimpleCounter(
      "camtunnel_unsupported_frames_total", "Frames of an unknown type (answered UNSUPPORTED).",
      Sum(shards_, [](const ShardMetrics& s) { return s.unsupported_frames.Get(); })));
  f.push_back(
      SimpleGauge("camtunnel_tunnels_open", "Tunnels relaying now.",
                  Sum(shards_, [](const ShardMetrics& s) { return s.tunnels_open.Get(); })));
  f.push_back(LabelledCounter<static_cast<size_t>(OpenResult::kCount)>(
      shards_, "camtunnel_tunnels_opened_total", "Tunnel open attempts by result.", "result",
      kOpenResultNames, [](const ShardMetrics& s, size_t i) { return s.tunnels_opened[i].Get(); }));
  f.push_back(SimpleGauge("camtunnel_spare_connections",
                          "Spare data connections held, proven and unused.",
                          Sum(shards_, [](const ShardMetrics& s) { return s.spares_held.Get(); })));
  f.push_back(LabelledCounter<static_cast<size_t>(SpareEvent::kCount)>(
      shards_, "camtunnel_spare_connections_total",
      "Spare data connections (opened ahead of need, PROTOCOL.md 8.1) by event.", "event",
      kSpareEventNames, [](const ShardMetrics& s, size_t i) { return s.spare_events[i].Get(); }));
  f.push_back(HistogramFamily(
      shards_, "camtunnel_tunnel_open_seconds", "Media request to data connection paired.",
      [](const ShardMetrics& s) -> const auto& { return s.tunnel_open_seconds; }));
  f.push_back(HistogramFamily(
      shards_, "camtunnel_handshake_seconds", "Agent TCP accept to verified HELLO.",
      [](const ShardMetrics& s) -> const auto& { return s.handshake_seconds; }));
  {
    FamilyBuilder b("camtunnel_relay_bytes_total", "Bytes relayed through tunnels, by direction.",
                    MetricType::Counter);
    b.Counter({{"direction", "to_camera"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.bytes_to_camera.Get(); }));
    b.Counter({{"direction", "to_client"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.bytes_to_client.Get(); }));
    f.push_back(b.Take());
  }
  {
    FamilyBuilder b("camtunnel_frontend_requests_total",
                    "Media-server requests by protocol and the status answered (101: tunnel).",
                    MetricType::Counter);
    for (size_t p = 0; p < kRequestKindNames.size(); ++p) {
      for (size_t i = 0; i < kFrontendStatuses.size(); ++i) {
        b.Counter(
            {{"protocol", kRequestKindNames[p]}, {"status", std::to_string(kFrontendStatuses[i])}},
            Sum(shards_, [&](const ShardMetrics& s) { return s.frontend_requests[p][i].Get(); }));
      }
    }
    f.push_back(b.Take());
  }
  f.push_back(LabelledCounter<static_cast<size_t>(FrontendBadInput::kCount)>(
      shards_, "camtunnel_frontend_bad_input_total",
      "Frontend connections closed for bad input, by reason.", "reason", kFrontendBadInputNames,
      [](const ShardMetrics& s, size_t i) { return s.frontend_bad_input[i].Get(); }));
  f.push_back(SimpleCounter(
      "camtunnel_accept_paused_total", "Times accepting paused because file descriptors ran out.",
      Sum(shards_, [](const ShardMetrics& s) { return s.accept_paused.Get(); })));
  f.push_back(SimpleCounter(
      "camtunnel_admin_unauthorized_total", "Admin requests refused for a missing or wrong token.",
      Sum(shards_, [](const ShardMetrics& s) { return s.admin_unauthorized.Get(); })));
  f.push_back(LabelledCounter<static_cast<size_t>(FrontendRefusal::kCount)>(
      shards_, "camtunnel_frontend_refused_total",
      "Frontend requests refused before routing: source not in frontend_allow (403), bearer "
      "token missing or wrong (407).",
      "reason", kFrontendRefusalNames,
      [](const ShardMetrics& s, size_t i) { return s.frontend_refused[i].Get(); }));
  {
    FamilyBuilder b("camtunnel_config_reloads_total",
                    "Configuration reloads (SIGHUP) by result; a failed one changed nothing.",
                    MetricType::Counter);
    b.Counter({{"result", "ok"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.reloads_ok.Get(); }));
    b.Counter({{"result", "failed"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.reloads_failed.Get(); }));
    f.push_back(b.Take());
  }
  f.push_back(SimpleGauge("camtunnel_shards", "Shards (threads with their own ring) running.",
                          facts_.shards));
  {
    FamilyBuilder b("camtunnel_shard_agents_connected",
                    "Verified agent sessions per shard (an agent lives on hash(id) mod shards).",
                    MetricType::Gauge);
    for (size_t i = 0; i < shards_.size(); ++i) {
      b.Gauge({{"shard", std::to_string(i)}},
              static_cast<double>(shards_[i]->agents_connected.Get()));
    }
    f.push_back(b.Take());
  }
  {
    FamilyBuilder b("camtunnel_shard_handoffs_total",
                    "Connections handed to their agent's home shard, by result (queue_full: "
                    "refused because the queue to that shard was full).",
                    MetricType::Counter);
    b.Counter({{"result", "moved"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.handoffs.Get(); }));
    b.Counter({{"result", "queue_full"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.handoffs_refused.Get(); }));
    f.push_back(b.Take());
  }
  {
    FamilyBuilder b("camtunnel_agent_tls_handshakes_total",
                    "TLS handshakes completed on the agent listeners, by kind (resumed: from a "
                    "session ticket, no certificate or signature).",
                    MetricType::Counter);
    b.Counter({{"kind", "full"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.tls_full_handshakes.Get(); }));
    b.Counter({{"kind", "resumed"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.tls_resumed_handshakes.Get(); }));
    f.push_back(b.Take());
  }
  {
    FamilyBuilder b("camtunnel_frontend_held_total",
                    "Media requests held for an agent not connected yet while this process takes "
                    "over from another (--takeover), by outcome.",
                    MetricType::Counter);
    b.Counter({{"result", "arrived"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.takeover_held_arrived.Get(); }));
    b.Counter({{"result", "timeout"}},
              Sum(shards_, [](const ShardMetrics& s) { return s.takeover_held_timeout.Get(); }));
    f.push_back(b.Take());
  }
  f.push_back(SimpleGauge("camtunnel_shard_connections",
                          "Connections the shards hold (agents, tunnels, waiting requests).",
                          facts_.shard_connections));
  f.push_back(SimpleGauge("camtunnel_stale_completions",
                          "Ring completions that arrived for a recycled slot (dropped).",
                          facts_.stale_completions));
  f.push_back(SimpleGauge("camtunnel_buffers_in_use",
                          "Provided receive buffers holding data not yet consumed.",
                          facts_.buffers_in_use));
  f.push_back(SimpleGauge("camtunnel_buffers_capacity",
                          "Provided receive buffers in the shards' buffer rings.",
                          facts_.buffers_capacity));
  f.push_back(SimpleGauge("camtunnel_buffers_published",
                          "Provided receive buffers offered to the kernel now: a few while the "
                          "load is light (they stay in the CPU caches), more after shortages.",
                          facts_.buffers_published));
  f.push_back(SimpleCounter("camtunnel_buffer_shortages_total",
                            "Receives that found the buffer ring empty (ENOBUFS): backpressure, "
                            "answered by offering more buffers.",
                            facts_.buffer_shortages));
  f.push_back(SimpleGauge("camtunnel_buffer_size_bytes", "Size of one provided receive buffer.",
                          facts_.buffer_bytes));
  f.push_back(SimpleGauge("camtunnel_draining",
                          "1 while the gateway drains (no new agents or requests), else 0.",
                          facts_.draining));
  f.push_back(SimpleCounter("camtunnel_agent_accept_paced_total",
                            "Times the TLS agent listeners stopped accepting for a moment because "
                            "the handshake budget (agent_handshakes_per_second) was spent.",
                            facts_.handshakes_paced));
  f.push_back(SimpleGauge("camtunnel_ktls_available",
                          "1 if this kernel can take TLS records (TCP_ULP tls), else 0: TLS runs "
                          "in user space.",
                          facts_.ktls_available));
  f.push_back(SimpleCounter("camtunnel_log_lines_suppressed_total",
                            "Log lines dropped by the per-cause rate limit.",
                            facts_.log_lines_suppressed));
  return f;
}

}  // namespace camtunnel::gateway
