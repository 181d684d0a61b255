// See relocation_push.h.
#include "manager/relocation_push.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "manager/gateway_admin_call.h"
#include "runtime/listener.h"

namespace camtunnel::manager {

RelocationPush::RelocationPush(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms,
                               uint64_t timeout_ms)
    : shard_(shard),
      pool_(pool),
      retry_ms_(retry_ms),
      timeout_ms_(timeout_ms),
      targets_(pool.size()),
      pending_(pool.size()),
      in_flight_(pool.size()),
      relocated_(pool.size()),
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

RelocationPush::~RelocationPush() {
  *alive_ = false;
  shard_.timers().Cancel(retry_timer_);
}

void RelocationPush::Moved(const std::string& agent_id, std::optional<size_t> from, size_t to) {
  // Back on `to`: a relocation put there earlier would send its requests away.
  if (targets_[to] && (relocated_[to].contains(agent_id) || pending_[to].contains(agent_id))) {
    pending_[to][agent_id] = Instruction{.generation = next_generation_++};
    Pump(to);
  }
  const std::string& frontend = pool_.config(to).frontend_url;
  if (from && *from != to && targets_[*from] && !frontend.empty()) {
    pending_[*from][agent_id] = Instruction{.frontend = frontend, .generation = next_generation_++};
    Pump(*from);
  }
}

void RelocationPush::Flush(size_t streamer) {
  if (streamer < pending_.size()) {
    Pump(streamer);
  }
}

RelocationPushCounters RelocationPush::counters() const {
  RelocationPushCounters c{.pushed = pushed_, .failed = failed_};
  for (const auto& p : pending_) {
    c.pending += p.size();
  }
  return c;
}

void RelocationPush::Pump(size_t i) {
  // Chosen first, sent after: a call may complete at once and change pending_ under a loop.
  std::vector<std::pair<std::string, Instruction>> batch;
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

void RelocationPush::Send(size_t i, const std::string& agent_id, const Instruction& what) {
  if (!in_flight_[i].insert(agent_id).second) {
    return;  // one call per (Streamer, agent) at a time
  }
  GatewayAdminRequest request{
      .to = *targets_[i],
      .host = pool_.config(i).admin_url.substr(7),
      .token = pool_.config(i).admin_token,
      .method = what.frontend ? "PUT" : "DELETE",
      .path = "/api/v1/relocations/" + agent_id,
      .body = what.frontend ? nlohmann::json{{"frontend", *what.frontend}}.dump() : "",
      .timeout_ms = timeout_ms_};
  const uint64_t generation = what.generation;
  const bool put = what.frontend.has_value();
  CallGatewayAdmin(shard_, request, alive_, [this, i, agent_id, generation, put](int status) {
    in_flight_[i].erase(agent_id);
    // A DELETE answered 404 found nothing to forget (a restarted gateway): done as well.
    const bool done = status == 200 || (!put && status == 404);
    auto it = pending_[i].find(agent_id);
    if (done) {
      ++pushed_;
      if (put) {
        relocated_[i].insert(agent_id);
      } else {
        relocated_[i].erase(agent_id);
      }
      if (it != pending_[i].end() && it->second.generation == generation) {
        pending_[i].erase(it);
      }
    } else {
      ++failed_;
      std::fprintf(stderr, "camtunnel-manager: relocation of %s at %s: %s, will retry\n",
                   agent_id.c_str(), pool_.config(i).url.c_str(),
                   status == 0 ? "no answer" : ("HTTP " + std::to_string(status)).c_str());
      if (!retry_timer_.armed()) {
        shard_.timers().Arm(retry_timer_, shard_.now_ms(), retry_ms_);
      }
      return;  // the retry timer sends again; pumping now would hammer a dead gateway
    }
    Pump(i);
  });
}

void RelocationPush::RetryAll() {
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pump(i);
  }
}

}  // namespace camtunnel::manager
