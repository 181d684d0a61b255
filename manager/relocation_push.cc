// See relocation_push.h.
#include "manager/relocation_push.h"

#include <nlohmann/json.hpp>

namespace camtunnel::manager {

RelocationPush::RelocationPush(runtime::Shard& shard, StreamerPool& pool, uint64_t retry_ms,
                               uint64_t timeout_ms)
    : pool_(pool),
      relocated_(pool.size()),
      queue_(shard, pool, "relocation", retry_ms, timeout_ms,
             [this](size_t streamer, const std::string& agent_id, const AdminPush& call) {
               if (call.method == "PUT") {
                 relocated_[streamer].insert(agent_id);
               } else {
                 relocated_[streamer].erase(agent_id);
               }
             }) {}

void RelocationPush::Moved(const std::string& agent_id, std::optional<size_t> from, size_t to) {
  const std::string path = "/api/v1/relocations/" + agent_id;
  // Back on `to`: a relocation put there earlier would send its requests away.
  if (relocated_[to].contains(agent_id) || queue_.pending(to, agent_id)) {
    queue_.Push(to, agent_id, {.method = "DELETE", .path = path, .not_found_is_done = true});
  }
  const std::string& frontend = pool_.config(to).frontend_url;
  if (from && *from != to && !frontend.empty()) {
    queue_.Push(
        *from, agent_id,
        {.method = "PUT", .path = path, .body = nlohmann::json{{"frontend", frontend}}.dump()});
  }
}

}  // namespace camtunnel::manager
