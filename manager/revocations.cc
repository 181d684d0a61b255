// See revocations.h.
#include "manager/revocations.h"

namespace camtunnel::manager {

Revocations::Revocations(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms,
                         uint64_t timeout_ms)
    : pool_(pool), queue_(shard, pool, "revocation", retry_ms, timeout_ms) {}

void Revocations::Revoke(const std::string& agent_id) {
  for (size_t i = 0; i < pool_.size(); ++i) {
    Resend(i, {agent_id});
  }
}

void Revocations::Resend(size_t streamer, const std::vector<std::string>& agent_ids) {
  for (const std::string& id : agent_ids) {
    queue_.Push(streamer, id, {.method = "PUT", .path = "/api/v1/denylist/" + id});
  }
}

}  // namespace camtunnel::manager
