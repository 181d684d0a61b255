#include "agentsim/load_driver.h"

#include <algorithm>
#include <vector>

#include "agentsim/media_rtsp_session.h"
#include "agentsim/media_snapshot.h"
#include "runtime/clock.h"

namespace camtunnel::agentsim {

LoadDriver::LoadDriver(SimContext& ctx, Fleet& fleet)
    : ctx_(ctx), fleet_(fleet), snapshot_rate_(ctx.options.snapshot_rate) {
  tick_.set_callback([this] { Tick(); });
}

LoadDriver::~LoadDriver() {
  if (pacer_ != nullptr) {
    pacer_->Stop();
  }
}

void LoadDriver::Start() {
  running_ = true;
  Tick();
  set_snapshot_rate(snapshot_rate_);
}

uint64_t LoadDriver::PacePeriodUs() const {
  // One snapshot per period, down to 100 us (beyond 10,000/s a period issues several); never
  // coarser than the wheel's tick.
  const double period_us = 1e6 / snapshot_rate_;
  return static_cast<uint64_t>(std::clamp(period_us, 100.0, kTickMs * 1000.0));
}

void LoadDriver::set_snapshot_rate(double per_second) {
  snapshot_rate_ = per_second;
  if (!running_) {
    return;
  }
  if (snapshot_rate_ <= 0) {
    if (pacer_ != nullptr) {
      pacer_->Stop();
      pacer_ = nullptr;
    }
    return;
  }
  if (pacer_ != nullptr) {
    pacer_->set_period_us(PacePeriodUs());
    return;
  }
  last_pace_ns_ = runtime::MonotonicNs();
  pacer_ = Pacer::Create(ctx_.shard, PacePeriodUs(), [this] { Pace(); });
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
  if (pacer_ != nullptr) {
    pacer_->Stop();
    pacer_ = nullptr;
  }
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
  ctx_.shard.timers().Arm(tick_, now, kTickMs);
}

void LoadDriver::Pace() {
  if (!running_ || ctx_.stopping || snapshot_rate_ <= 0) {
    return;
  }
  const uint64_t now = runtime::MonotonicNs();
  const double elapsed_s = static_cast<double>(now - last_pace_ns_) / 1e9;
  last_pace_ns_ = now;
  // At most two periods' worth carried over, so a stall does not become a burst.
  const double period_s = static_cast<double>(PacePeriodUs()) / 1e6;
  tokens_ =
      std::min(tokens_ + snapshot_rate_ * elapsed_s, std::max(1.0, snapshot_rate_ * period_s * 2));
  while (tokens_ >= 1) {
    tokens_ -= 1;
    const AgentIdentity* agent = fleet_.RandomUp();
    if (agent == nullptr) {
      break;
    }
    if (live_.size() - streams_live_ >= ctx_.options.snapshot_concurrency) {
      ++window_.skipped;
      continue;
    }
    Launch(new MediaSnapshot(ctx_, *this, *agent), *agent);
  }
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
