// See history_retention.h.
#include "manager/history_retention.h"

#include "absl/status/statusor.h"
#include "runtime/clock.h"
#include "runtime/log.h"

namespace camtunnel::manager {

HistoryRetention::HistoryRetention(runtime::Shard& shard, LeaderLease& lease, uint64_t retention_ms,
                                   uint64_t check_ms)
    : shard_(shard), lease_(lease), retention_ms_(retention_ms), check_ms_(check_ms) {}

HistoryRetention::~HistoryRetention() { *alive_ = false; }

void HistoryRetention::Start() {
  if (retention_ms_ == 0) {
    return;
  }
  timer_.set_callback([this] { Check(); });
  shard_.timers().Arm(timer_, shard_.now_ms(), check_ms_);
}

void HistoryRetention::Check() {
  shard_.timers().Arm(timer_, shard_.now_ms(), check_ms_);
  if (running_ || !lease_.leading()) {
    return;
  }
  running_ = true;
  PruneBatch(static_cast<int64_t>(runtime::WallMs()) - static_cast<int64_t>(retention_ms_));
}

void HistoryRetention::PruneBatch(int64_t before_ms) {
  auto pruned = std::make_shared<uint64_t>(0);
  lease_.Fenced(
      "retention",
      [before_ms, pruned](StoreConnection& c) -> absl::Status {
        absl::StatusOr<uint64_t> n = c.PruneHistory(before_ms, kBatch);
        if (!n.ok()) {
          return n.status();
        }
        *pruned = *n;
        return absl::OkStatus();
      },
      [this, alive = alive_, before_ms, pruned](const absl::Status& st) {
        if (!*alive) {
          return;
        }
        if (!st.ok()) {
          ++failures_;
          running_ = false;
          runtime::LogEvent(runtime::LogLevel::kWarning, "history_prune_failed",
                            {runtime::Kv("status", st.ToString())});
          return;
        }
        pruned_ += *pruned;
        // A batch that found rows may have left more: the next one goes at once (each is its own
        // short transaction, so links and activations interleave with them).
        if (*pruned > 0 && lease_.leading()) {
          PruneBatch(before_ms);
          return;
        }
        running_ = false;
      });
}

}  // namespace camtunnel::manager
