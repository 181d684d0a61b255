#include "agentsim/fleet.h"

#include <algorithm>

#include "agentsim/rtp_format.h"

namespace camtunnel::agentsim {
namespace {
// How often paced connects are released when --connect_rate limits them (one timer tick).
constexpr uint64_t kPumpMs = 10;
}  // namespace

Fleet::Fleet(SimContext& ctx, const StreamerKey* key, uint64_t expiry_s)
    : ctx_(ctx), managed_(key == nullptr) {
  const Options& o = ctx.options;
  agents_.reserve(o.agents);
  up_.reserve(o.agents);
  for (uint32_t i = 0; i < o.agents; ++i) {
    AgentIdentity id;
    id.index = o.agent_index_base + i;
    id.id = o.agent_prefix + std::to_string(id.index);
    if (key != nullptr) {
      id.key_ref = proto::KeyRef{key->key_id, expiry_s};
      // What the manager would hand each agent: K derived from the streamer key.
      id.key = proto::DeriveAgentKey(key->key, id.id, id.key_ref);
    }
    id.tag = AgentTag(id.id);
    agents_.push_back(std::make_unique<SimAgent>(ctx, *this, std::move(id)));
  }
  pump_timer_.set_callback([this] { Pump(); });
}

Fleet::~Fleet() = default;

void Fleet::Start() {
  if (!managed_) {
    for (auto& a : agents_) {
      waiting_.push_back(a.get());
    }
  }
  budget_.Start(ctx_.shard.now_ms());
  Pump();
}

void Fleet::Stop() {
  waiting_.clear();
  ctx_.shard.timers().Cancel(pump_timer_);
  for (auto& a : agents_) {
    a->Stop();
  }
}

void Fleet::Pump() {
  const Options& o = ctx_.options;
  const uint64_t now = ctx_.shard.now_ms();
  while (!waiting_.empty() && in_flight_ < o.connect_concurrency && !ctx_.stopping) {
    if (!budget_.Take(o.connect_rate, now)) {
      break;
    }
    SimAgent* a = waiting_.front();
    waiting_.pop_front();
    if (!a->idle()) {
      continue;
    }
    ++in_flight_;
    a->Connect();
  }
  if (!waiting_.empty() && o.connect_rate > 0 && !pump_timer_.armed()) {
    ctx_.shard.timers().Arm(pump_timer_, now, kPumpMs);
  }
}

const AgentIdentity* Fleet::RandomUp() {
  if (up_.empty()) {
    return nullptr;
  }
  return &up_[ctx_.Random(up_.size())]->identity();
}

void Fleet::DropRandom(uint64_t down_ms) {
  if (!up_.empty()) {
    up_[ctx_.Random(up_.size())]->Drop(down_ms);
  }
}

void Fleet::DropAll() {
  // Drop() removes agents from up_ as it goes.
  const std::vector<SimAgent*> victims = up_;
  for (SimAgent* a : victims) {
    a->Drop(std::nullopt);
  }
}

void Fleet::OnAgentUp(SimAgent& agent) {
  agent.up_slot = up_.size();
  up_.push_back(&agent);
  if (complete()) {
    const uint64_t now = ctx_.shard.now_ms();
    if (first_complete_ms_ == 0) {
      first_complete_ms_ = now;
    } else if (incomplete_since_ms_ != 0) {
      recoveries_ms_.push_back(now - incomplete_since_ms_);
    }
    incomplete_since_ms_ = 0;
  }
}

void Fleet::OnAgentDown(SimAgent& agent) {
  if (complete() && first_complete_ms_ != 0) {
    incomplete_since_ms_ = ctx_.shard.now_ms();
  }
  // Swap-remove: O(1), order does not matter.
  const size_t slot = agent.up_slot;
  up_[slot] = up_.back();
  up_[slot]->up_slot = slot;
  up_.pop_back();
  agent.up_slot = SIZE_MAX;
}

void Fleet::OnAttemptEnded(SimAgent& /*agent*/) {
  --in_flight_;
  // Not synchronously: we may be inside that agent's callbacks, and Pump starts other agents.
  if (!waiting_.empty()) {
    ctx_.shard.Defer([this] { Pump(); });
  }
}

void Fleet::OnReconnectDue(SimAgent& agent) {
  waiting_.push_back(&agent);
  ctx_.shard.Defer([this] { Pump(); });
}

}  // namespace camtunnel::agentsim
