// The gateway's metric cells, one set per shard (single writer each), and their exposition in
// Prometheus text (summed over shards at scrape time by gateway_collectable.h). Labels are
// low-cardinality enums; never an agent id (per-agent detail lives in the admin API).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "metrics/counters.h"

namespace camtunnel::gateway {

// Outcome of an agent-side connection (control or data upgrade).
enum class AgentResult : uint8_t {
  kAccepted,
  kBadRequest,    // malformed head, non-canonical id, bad nonce (400)
  kHeadTooLarge,  // 431
  kUnauthorized,  // unknown key id, expired, revoked (401)
  kBadProof,      // wrong HELLO or data proof
  kForbidden,     // plain refused, tunnel of another agent (403)
  kNotFound,      // unknown or replayed tunnel (404)
  kTimeout,       // handshake deadline
  kTlsError,      // handshake failed or stream truncated
  kBusy,          // over a cap (503)
  kCount
};
inline constexpr std::array<const char*, static_cast<size_t>(AgentResult::kCount)>
    kAgentResultNames = {"accepted",  "bad_request", "head_too_large", "unauthorized", "bad_proof",
                         "forbidden", "not_found",   "timeout",        "tls_error",    "busy"};

enum class FrameReject : uint8_t { kBadMac, kMalformed, kTooLarge, kUnexpected, kCount };
inline constexpr std::array<const char*, static_cast<size_t>(FrameReject::kCount)>
    kFrameRejectNames = {"bad_mac", "malformed", "too_large", "unexpected"};

enum class OpenResult : uint8_t {
  kOk,
  kCameraRefused,  // OPEN_FAILED (502)
  kTimeout,        // no data connection in time (504)
  kNotExposed,     // 403
  kUnknownAgent,   // 404
  kOffline,        // 503
  kBusy,           // pending cap (503)
  kCount
};
inline constexpr std::array<const char*, static_cast<size_t>(OpenResult::kCount)> kOpenResultNames =
    {"ok", "camera_refused", "timeout", "not_exposed", "unknown_agent", "offline", "busy"};

enum class RequestKind : uint8_t { kRtsp, kHttp, kConnect, kCount };
inline constexpr std::array<const char*, 3> kRequestKindNames = {"rtsp", "http", "connect"};
// Statuses the frontend answers with; 101 stands for "tunnel established".
inline constexpr std::array<int, 13> kFrontendStatuses = {101, 302, 307, 400, 403, 404, 405,
                                                          407, 431, 501, 502, 503, 504};

enum class FrontendBadInput : uint8_t { kMalformed, kTooLarge, kTimeout, kOtherAgent, kCount };
inline constexpr std::array<const char*, static_cast<size_t>(FrontendBadInput::kCount)>
    kFrontendBadInputNames = {"malformed", "too_large", "timeout", "other_agent"};

// Frontend requests refused before routing: a source outside frontend_allow (403), a missing or
// wrong bearer token (407).
enum class FrontendRefusal : uint8_t { kSource, kToken, kCount };
inline constexpr std::array<const char*, static_cast<size_t>(FrontendRefusal::kCount)>
    kFrontendRefusalNames = {"source", "token"};

// Spare data connections (PROTOCOL.md 8.1), by what happened to them.
enum class SpareEvent : uint8_t {
  kRequested,      // SPARE sent
  kHeld,           // proven and parked
  kUsed,           // an open took it (OPEN written on it)
  kMissed,         // an open found none held while one was on its way: the agent gets one more
  kSentAhead,      // the media server's first bytes followed that OPEN at once (early data)
  kOpened,         // the agent answered OPENED: the tunnel runs on it
  kCameraRefused,  // the agent answered OPEN_FAILED
  kFellBack,       // it died before answering; the open went over the control connection
  kExpired,        // unused for the idle period, or never connected
  kProtocolError,  // bytes before OPEN, a wrong frame or tunnel id
  kCount
};
inline constexpr std::array<const char*, static_cast<size_t>(SpareEvent::kCount)> kSpareEventNames =
    {"requested", "held",           "used",      "missed",  "sent_ahead",
     "opened",    "camera_refused", "fell_back", "expired", "protocol_error"};

inline constexpr std::array<double, 12> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,   0.1,   0.25,   0.5,   1,    5};

struct ShardMetrics {
  metrics::Gauge agents_connected;
  metrics::Gauge unauthenticated;
  metrics::Gauge tunnels_open;
  metrics::Gauge spares_held;
  std::array<metrics::Counter, static_cast<size_t>(SpareEvent::kCount)> spare_events;
  std::array<metrics::Counter, static_cast<size_t>(AgentResult::kCount)> control_connections;
  std::array<metrics::Counter, static_cast<size_t>(AgentResult::kCount)> data_connections;
  std::array<metrics::Counter, static_cast<size_t>(FrameReject::kCount)> frames_rejected;
  metrics::Counter sessions_replaced;
  metrics::Counter heartbeat_timeouts;
  metrics::Counter unsupported_frames;
  std::array<metrics::Counter, static_cast<size_t>(OpenResult::kCount)> tunnels_opened;
  metrics::Histogram<kLatencyBounds.size()> tunnel_open_seconds{kLatencyBounds};
  metrics::Histogram<kLatencyBounds.size()> handshake_seconds{kLatencyBounds};
  metrics::Counter bytes_to_camera;
  metrics::Counter bytes_to_client;
  std::array<std::array<metrics::Counter, kFrontendStatuses.size()>, 3> frontend_requests;
  std::array<metrics::Counter, static_cast<size_t>(FrontendBadInput::kCount)> frontend_bad_input;
  std::array<metrics::Counter, static_cast<size_t>(FrontendRefusal::kCount)> frontend_refused;
  metrics::Counter accept_paused;
  metrics::Counter admin_unauthorized;
  metrics::Counter reloads_ok;
  metrics::Counter reloads_failed;
  // Connections handed to their agent's home shard, and hand-offs refused because the queue to
  // that shard was full (the connection got 503 / an immediate close).
  metrics::Counter handoffs;
  metrics::Counter handoffs_refused;
  // TLS handshakes completed on the agent listener: full (certificate + signature) and resumed
  // from a ticket (the agent's data connections and reconnects).
  metrics::Counter tls_full_handshakes;
  metrics::Counter tls_resumed_handshakes;
  // Takeover: media requests held for an agent not connected yet, by how the wait ended.
  metrics::Counter takeover_held_arrived;
  metrics::Counter takeover_held_timeout;

  void CountControl(AgentResult r) { control_connections[static_cast<size_t>(r)].Add(); }
  void CountData(AgentResult r) { data_connections[static_cast<size_t>(r)].Add(); }
  void CountFrameReject(FrameReject r) { frames_rejected[static_cast<size_t>(r)].Add(); }
  void CountOpen(OpenResult r) { tunnels_opened[static_cast<size_t>(r)].Add(); }
  void CountSpare(SpareEvent e) { spare_events[static_cast<size_t>(e)].Add(); }
  void CountFrontend(RequestKind p, int status);
  void CountBadInput(FrontendBadInput b) { frontend_bad_input[static_cast<size_t>(b)].Add(); }
  void CountRefusal(FrontendRefusal r) { frontend_refused[static_cast<size_t>(r)].Add(); }
};

// Gauges of the shards, read on each shard's thread at scrape time and summed.
struct GatewayFacts {
  double shards = 0;
  double shard_connections = 0;
  double stale_completions = 0;
  double buffers_in_use = 0;
  double buffers_capacity = 0;
  double buffers_published = 0;  // of the capacity, how many the rings offer the kernel now
  double buffer_shortages = 0;   // receives that found a ring empty (ENOBUFS)
  double buffer_bytes = 0;       // size of one provided buffer
  double draining = 0;
  double log_lines_suppressed = 0;
  double handshakes_paced = 0;  // times the TLS agent listeners paused for the budget
  double ktls_available = 0;

  // Sums another shard's gauges into these.
  void AddShard(const GatewayFacts& shard);
};

// One scrape in Prometheus text: a GatewayCollectable over `shards` (at least one) and `facts`,
// then build information and the process's facts (metrics::ProcessCollectable).
std::string RenderMetrics(const std::vector<const ShardMetrics*>& shards,
                          const GatewayFacts& facts);

}  // namespace camtunnel::gateway
