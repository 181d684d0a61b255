// See seen_batcher.h.
#include "manager/seen_batcher.h"

#include <utility>
#include <vector>

namespace camtunnel::manager {

SeenBatcher::SeenBatcher(runtime::Shard& shard, Store& store, uint64_t interval_ms,
                         size_t max_batch)
    : shard_(shard), store_(store), interval_ms_(interval_ms), max_batch_(max_batch) {
  timer_.set_callback([this] {
    armed_ = false;
    Flush();
  });
}

SeenBatcher::~SeenBatcher() {
  shard_.timers().Cancel(timer_);
  Flush();
}

void SeenBatcher::Touch(std::string_view agent_id, int64_t wall_ms, std::string_view status) {
  auto [it, fresh] = waiting_.try_emplace(std::string(agent_id));
  SeenUpdate& u = it->second;
  if (fresh) {
    u.agent_id = std::string(agent_id);
  }
  u.last_seen_ms = std::max(u.last_seen_ms, wall_ms);
  if (!status.empty()) {
    u.status = std::string(status);
  }
  if (waiting_.size() >= max_batch_) {
    Flush();
  } else if (!armed_) {
    armed_ = true;
    shard_.timers().Arm(timer_, shard_.now_ms(), interval_ms_);
  }
}

void SeenBatcher::Flush() {
  if (waiting_.empty()) {
    return;
  }
  std::vector<SeenUpdate> batch;
  batch.reserve(waiting_.size());
  for (auto& [id, u] : waiting_) {
    batch.push_back(std::move(u));
  }
  waiting_.clear();
  ++flushes_;
  store_.Write("seen", {},
               [batch = std::move(batch)](StoreConnection& c) { return c.RecordSeen(batch); });
}

}  // namespace camtunnel::manager
