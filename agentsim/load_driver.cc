#include "agentsim/load_driver.h"

#include <algorithm>
#include <vector>

#include "agentsim/media_rtsp_session.h"
#include "agentsim/media_snapshot.h"

namespace camtunnel::agentsim {

LoadDriver::LoadDriver(SimContext& ctx, Fleet& fleet)
    : ctx_(ctx), fleet_(fleet), snapshot_rate_(ctx.options.snapshot_rate) {
  tick_.set_callback([this] { Tick(); });
}

LoadDriver::~LoadDriver() = default;

void LoadDriver::Start() {
  running_ = true;
  last_tick_ms_ = ctx_.shard.now_ms();
  Tick();
}

IntegrityCounts LoadDriver::LiveIntegrity() const {
  IntegrityCounts sum;
  for (const MediaSession* s : streams_) {
    sum += s->LiveIntegrity();
  }
  return sum;
}

void LoadDriver::Stop() {
  running_ = false;
  ctx_.shard.timers().Cancel(tick_);
  // Stop() may end a session synchronously, which erases it from live_.
  const std::vector<MediaSession*> sessions(live_.begin(), live_.end());
  for (MediaSession* s : sessions) {
    if (live_.contains(s)) {
      s->Stop();
    }
  }
}

void LoadDriver::Launch(MediaSession* session, const AgentIdentity& agent) {
  live_.insert(session);
  if (opened_.insert(&agent).second) {
    firsts_.insert(session);
  }
  session->Start();
}

void LoadDriver::Tick() {
  if (!running_ || ctx_.stopping) {
    return;
  }
  const Options& o = ctx_.options;
  const uint64_t now = ctx_.shard.now_ms();
  const double elapsed_s = static_cast<double>(now - last_tick_ms_) / 1000.0;
  last_tick_ms_ = now;
  // Sessions that ended are replaced on the next tick, on another random camera: at most one
  // attempt per missing session per tick, so a failing gateway is not hammered in a loop.
  const auto play_ms = static_cast<uint64_t>(o.stream_seconds * 1000);
  for (uint32_t i = streams_live_; i < o.streams; ++i) {
    const AgentIdentity* agent = fleet_.RandomUp();
    if (agent == nullptr) {
      break;
    }
    auto* s = new MediaRtspSession(ctx_, *this, *agent, play_ms);
    streams_.insert(s);
    ++streams_live_;
    Launch(s, *agent);
  }
  if (snapshot_rate_ > 0) {
    // At most one tick's worth carried over, so a stall does not become a burst.
    tokens_ = std::min(tokens_ + snapshot_rate_ * elapsed_s,
                       std::max(1.0, snapshot_rate_ * kTickMs / 1000.0 * 2));
    while (tokens_ >= 1) {
      tokens_ -= 1;
      const AgentIdentity* agent = fleet_.RandomUp();
      if (agent == nullptr) {
        break;
      }
      if (live_.size() - streams_live_ >= o.snapshot_concurrency) {
        ++window_.skipped;
        continue;
      }
      Launch(new MediaSnapshot(ctx_, *this, *agent), *agent);
    }
  }
  ctx_.shard.timers().Arm(tick_, now, kTickMs);
}

void LoadDriver::OnOpenResult(MediaSession& session, std::string_view result, uint64_t latency_us) {
  const bool first = firsts_.erase(&session) > 0;
  if (result == "stopped") {
    return;  // ended by us before it could open: not a result of the gateway
  }
  ++ctx_.stats.media.opens[std::string(result)];
  ++window_.opens;
  if (result == "ok") {
    MediaStats& m = ctx_.stats.media;
    m.open_us.Record(latency_us);
    (first ? m.first_open_us : m.later_open_us).Record(latency_us);
    window_.latency_us.Record(latency_us);
  } else {
    ++window_.failures;
  }
}

void LoadDriver::OnMediaEnded(MediaSession& session) {
  live_.erase(&session);
  firsts_.erase(&session);
  if (streams_.erase(&session) == 1) {
    --streams_live_;
  }
}

}  // namespace camtunnel::agentsim
