// Everything the simulator counts, in one place: the agents' side (connections, sessions,
// heartbeats, tunnels), the simulated cameras, and the media server's side (opens, latency,
// verified bytes, integrity errors). Single-threaded (the shard's), read by the progress line,
// /metrics and the final report on the same thread, so plain integers suffice.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "agentsim/integrity_checker.h"
#include "agentsim/latency_histogram.h"

namespace camtunnel::agentsim {

// Counts by a short result name ("ok", "rtsp_503", "connect_error"...), sorted for reports.
using ResultCounts = std::map<std::string, uint64_t>;

struct AgentStats {
  uint64_t connect_attempts = 0;
  uint64_t sessions = 0;    // WELCOMEs received
  uint64_t reconnects = 0;  // sessions after an agent's first
  ResultCounts failures;    // attempts and sessions that ended badly, by reason
  uint64_t goaways = 0;
  uint64_t heartbeat_timeouts = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t pings_answered = 0;
  uint64_t status_sent = 0;
  uint64_t opens_received = 0;
  uint64_t opens_refused = 0;  // service not exposed: OPEN_FAILED
  // Dialed data connections by result: "ok" (on OPEN), "spare" (on SPARE), "connect_error",
  // "status_404", ... A tunnel runs on an "ok" one or on a spare that got OPEN ("opened").
  ResultCounts data_connections;
  ResultCounts tls_handshakes;  // "full", "resumed": control and data connections
  ResultCounts spares;  // PROTOCOL.md 8.1: "asked", "held", "opened", "refused", "closed_unused"
  LatencyHistogram connect_us;  // first attempt to WELCOME, per session
};

struct CameraStats {
  uint64_t rtsp_sessions = 0;
  uint64_t rtsp_requests = 0;
  uint64_t http_requests = 0;
  uint64_t frames_sent = 0;
  uint64_t frames_skipped = 0;  // the tunnel was backed up: the camera skipped a frame
  uint64_t packets_sent = 0;
  uint64_t faults_injected = 0;
  uint64_t bytes_sent = 0;
};

struct MediaStats {
  ResultCounts opens;  // first answer of each media request: "ok" or why not
  LatencyHistogram open_us;
  LatencyHistogram first_open_us;  // the media side's first open to its agent in this run
  LatencyHistogram later_open_us;  // every other (the agent may hold a spare by then)
  ResultCounts sessions;           // how RTSP sessions ended: completed, interrupted, failed
  uint64_t rtsp_active = 0;
  uint64_t snapshots_active = 0;
  ResultCounts snapshots;  // how snapshot requests ended: ok, corrupt, truncated, failed
  uint64_t snapshot_bytes_verified = 0;
  uint64_t bytes_received = 0;  // every byte read from the frontend
  // Finished sessions' counts; live sessions add theirs when they end. Snapshot checksum
  // failures count as corrupt.
  IntegrityCounts integrity;

  uint64_t opens_total() const;
  uint64_t opens_failed() const;
};

// Managed mode (PROTOCOL.md section 10): activation, the manager links and what came down them.
struct ManagedStats {
  uint64_t activation_requests = 0;
  // Answers and failed requests by result: "activated", "reactivated", "status_429",
  // "status_409", "status_503", "connect_refused", "closed", "timeout", "unusable_answer"...
  ResultCounts activations;
  LatencyHistogram activation_us;  // request to a 200 answer
  uint64_t first_activation_request_ms = 0;
  uint64_t last_activation_ms = 0;  // the last 200 answer
  uint64_t link_attempts = 0;
  uint64_t links_established = 0;  // WELCOMEs
  uint64_t links_up = 0;
  ResultCounts link_failures;  // attempts and links that ended badly, by reason ("busy", ...)
  uint64_t failovers = 0;      // an attempt moved on to the next manager of the agent's order
  uint64_t relinks = 0;        // links established after an established link was lost
  LatencyHistogram relink_us;  // from the loss to the next WELCOME
  uint64_t assigns = 0;
  ResultCounts assign_errors;  // ASSIGNs (or SWITCHes) that named nothing usable
  uint64_t switches = 0;
  uint64_t restarts = 0;
  uint64_t deactivations = 0;
  uint64_t acks_sent = 0;           // commands with an id acknowledged (PROTOCOL.md 10.6)
  uint64_t duplicate_commands = 0;  // of those, delivered again and not redone
  uint64_t status_sent = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t pings_answered = 0;
};

struct SimStats {
  AgentStats agents;
  ManagedStats managed;
  CameraStats cameras;
  MediaStats media;
};

}  // namespace camtunnel::agentsim
