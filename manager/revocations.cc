// See revocations.h.
#include "manager/revocations.h"

#include <cstdio>

#include "manager/gateway_admin_call.h"
#include "runtime/listener.h"

namespace camtunnel::manager {

Revocations::Revocations(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms,
                         uint64_t timeout_ms)
    : shard_(shard),
      pool_(pool),
      retry_ms_(retry_ms),
      timeout_ms_(timeout_ms),
      targets_(pool.size()),
      pending_(pool.size()),
      in_flight_(pool.size()),
      alive_(std::make_shared<bool>(true)) {
  for (size_t i = 0; i < pool.size(); ++i) {
    const std::string& url = pool.config(i).admin_url;
    if (url.starts_with("http://")) {
      if (auto addr = runtime::ParseListenAddress(url.substr(7)); addr.ok()) {
        targets_[i] = *addr;
      }
    }
  }
  retry_timer_.set_callback([this] { RetryAll(); });
}

Revocations::~Revocations() {
  *alive_ = false;
  shard_.timers().Cancel(retry_timer_);
}

void Revocations::Revoke(const std::string& agent_id) {
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i]) {
      pending_[i].insert(agent_id);
      Send(i, agent_id);
    }
  }
}

void Revocations::Resend(size_t streamer, const std::vector<std::string>& agent_ids) {
  if (streamer >= targets_.size() || !targets_[streamer]) {
    return;
  }
  for (const std::string& id : agent_ids) {
    pending_[streamer].insert(id);
    Send(streamer, id);
  }
}

RevocationCounters Revocations::counters() const {
  RevocationCounters c{.pushed = pushed_, .failed = failed_};
  for (const auto& p : pending_) {
    c.pending += p.size();
  }
  return c;
}

void Revocations::Send(size_t i, const std::string& agent_id) {
  if (!in_flight_[i].insert(agent_id).second) {
    return;  // one push per (Streamer, agent) at a time
  }
  GatewayAdminRequest request{.to = *targets_[i],
                              .host = pool_.config(i).admin_url.substr(7),
                              .token = pool_.config(i).admin_token,
                              .method = "PUT",
                              .path = "/api/v1/denylist/" + agent_id,
                              .timeout_ms = timeout_ms_};
  CallGatewayAdmin(shard_, request, alive_, [this, i, agent_id](int status) {
    in_flight_[i].erase(agent_id);
    if (status == 200) {
      ++pushed_;
      pending_[i].erase(agent_id);
      return;
    }
    ++failed_;
    std::fprintf(stderr, "camtunnel-manager: revoking %s at %s: %s, will retry\n", agent_id.c_str(),
                 pool_.config(i).url.c_str(),
                 status == 0 ? "no answer" : ("HTTP " + std::to_string(status)).c_str());
    if (!retry_timer_.armed()) {
      shard_.timers().Arm(retry_timer_, shard_.now_ms(), retry_ms_);
    }
  });
}

void Revocations::RetryAll() {
  for (size_t i = 0; i < pending_.size(); ++i) {
    // A copy: a push may complete (and erase) while we walk.
    const std::set<std::string> ids = pending_[i];
    for (const std::string& id : ids) {
      Send(i, id);
    }
  }
}

}  // namespace camtunnel::manager
