// See admin_push_queue.h.
#include "manager/admin_push_queue.h"

#include <utility>

#include "runtime/log.h"

namespace camtunnel::manager {

AdminPushQueue::AdminPushQueue(runtime::Shard& shard, StreamerPool& pool, std::string what,
                               uint64_t retry_ms, uint64_t timeout_ms, Confirmed confirmed)
    : shard_(shard),
      pool_(pool),
      what_(std::move(what)),
      retry_ms_(retry_ms),
      timeout_ms_(timeout_ms),
      confirmed_(std::move(confirmed)),
      targets_(pool.size()),
      pending_(pool.size()),
      in_flight_(pool.size()),
      alive_(std::make_shared<bool>(true)) {
  for (size_t i = 0; i < pool.size(); ++i) {
    targets_[i] = ParseAdminUrl(pool.config(i).admin_url);
  }
  retry_timer_.set_callback([this] {
    for (size_t i = 0; i < pending_.size(); ++i) {
      Pump(i);
    }
  });
}

AdminPushQueue::~AdminPushQueue() {
  *alive_ = false;
  shard_.timers().Cancel(retry_timer_);
}

void AdminPushQueue::Push(size_t streamer, const std::string& agent_id, AdminPush call) {
  if (streamer >= targets_.size() || !targets_[streamer]) {
    return;
  }
  pending_[streamer][agent_id] = Pending{.call = std::move(call), .generation = next_generation_++};
  Pump(streamer);
}

void AdminPushQueue::Flush(size_t streamer) {
  if (streamer < pending_.size()) {
    Pump(streamer);
  }
}

AdminPushCounters AdminPushQueue::counters() const {
  AdminPushCounters c{.pushed = pushed_, .failed = failed_};
  for (const auto& p : pending_) {
    c.pending += p.size();
  }
  return c;
}

void AdminPushQueue::Pump(size_t i) {
  // Chosen first, sent after: a call may complete at once and change pending_ under a loop.
  std::vector<std::pair<std::string, Pending>> batch;
  for (const auto& [agent_id, what] : pending_[i]) {
    if (in_flight_[i].size() + batch.size() >= kMaxInFlight) {
      break;
    }
    if (!in_flight_[i].contains(agent_id)) {
      batch.emplace_back(agent_id, what);
    }
  }
  for (const auto& [agent_id, what] : batch) {
    Send(i, agent_id, what);
  }
}

void AdminPushQueue::Send(size_t i, const std::string& agent_id, const Pending& what) {
  in_flight_[i].insert(agent_id);
  AdminRequest request{.to = targets_[i]->to,
                       .host = targets_[i]->host,
                       .token = pool_.config(i).admin_token,
                       .method = what.call.method,
                       .path = what.call.path,
                       .body = what.call.body,
                       .timeout_ms = timeout_ms_};
  CallAdmin(shard_, request, alive_, [this, i, agent_id, what](int status, const std::string&) {
    in_flight_[i].erase(agent_id);
    if (status == 200 || (what.call.not_found_is_done && status == 404)) {
      ++pushed_;
      auto it = pending_[i].find(agent_id);
      // A newer call for the agent stays pending: only this one is confirmed.
      if (it != pending_[i].end() && it->second.generation == what.generation) {
        pending_[i].erase(it);
      }
      if (confirmed_) {
        confirmed_(i, agent_id, what.call);
      }
      Pump(i);
      return;
    }
    ++failed_;
    runtime::LogEvent(
        runtime::LogLevel::kWarning, "admin_push_failed",
        {runtime::Kv("push", what_), runtime::Kv("agent", agent_id),
         runtime::Kv("streamer", pool_.config(i).url),
         runtime::Kv("status", status == 0 ? std::string("no_answer") : std::to_string(status)),
         runtime::Kv("retry", "yes")});
    // The retry timer sends again; pumping now would hammer a dead gateway.
    if (!retry_timer_.armed()) {
      shard_.timers().Arm(retry_timer_, shard_.now_ms(), retry_ms_);
    }
  });
}

}  // namespace camtunnel::manager
