// Drives the media server's load through the frontend: keeps --streams RTSP sessions running
// (each --stream_seconds long, then replaced by one on another camera) and issues snapshot
// requests at a rate (token bucket, at most --snapshot_concurrency in flight), each on a random
// agent that is up, spread evenly over time (Pacer). Collects the open results and latencies,
// overall and for the current window (open-rate's steps).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "agentsim/fleet.h"
#include "agentsim/latency_histogram.h"
#include "agentsim/media_session.h"
#include "agentsim/pacer.h"
#include "agentsim/sim_context.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

struct OpenWindow {
  uint64_t opens = 0;
  uint64_t failures = 0;
  uint64_t skipped = 0;  // a snapshot was due but --snapshot_concurrency were in flight
  LatencyHistogram latency_us;
};

class LoadDriver final : public MediaObserver {
 public:
  static constexpr uint64_t kTickMs = 10;

  LoadDriver(SimContext& ctx, Fleet& fleet);
  ~LoadDriver();

  void Start();
  // No new sessions; ends the live ones (RTSP with TEARDOWN). live() reaches 0 when all ended.
  void Stop();
  size_t live() const { return live_.size(); }
  // The sum of the live sessions' own counts (MediaSession::LiveIntegrity): O(streams), once a
  // second or per /metrics scrape.
  IntegrityCounts LiveIntegrity() const;

  void set_snapshot_rate(double per_second);
  double snapshot_rate() const { return snapshot_rate_; }

  const OpenWindow& window() const { return window_; }
  void ResetWindow() { window_ = OpenWindow(); }

  void OnOpenResult(MediaSession& session, std::string_view result, uint64_t latency_us) override;
  void OnMediaEnded(MediaSession& session) override;

 private:
  void Tick();
  // Snapshots due since the last call, from the pacer.
  void Pace();
  uint64_t PacePeriodUs() const;
  void Launch(MediaSession* session, const AgentIdentity& agent);

  SimContext& ctx_;
  Fleet& fleet_;
  bool running_ = false;
  uint32_t streams_live_ = 0;
  double snapshot_rate_ = 0;
  double tokens_ = 0;
  uint64_t last_pace_ns_ = 0;
  Pacer* pacer_ = nullptr;  // while snapshots are asked for; frees itself once stopped
  OpenWindow window_;
  absl::flat_hash_set<MediaSession*> live_;
  absl::flat_hash_set<MediaSession*> streams_;  // the RTSP ones among live_
  // Agents opened so far, and the live sessions that were their agent's first open: that one
  // cannot find a spare data connection (the gateway asks for one after an agent's first
  // tunnel), so its latency is reported apart as well as in the whole.
  absl::flat_hash_set<const AgentIdentity*> opened_;
  absl::flat_hash_set<MediaSession*> firsts_;
  runtime::Timer tick_;
};

}  // namespace camtunnel::agentsim
