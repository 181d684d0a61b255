// Media requests waiting for an agent that is not connected here yet. While a new gateway
// process takes over from an old one (upgrade, `--takeover`), agents move over one by one as the
// old process drains; a request that reaches the new process first waits here for its agent
// (bounded by takeover_hold_ms) instead of being refused. Shard-local: an agent's waiters live
// on its home shard, where its session will be installed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace camtunnel::gateway {

class AgentWaiters {
 public:
  class Waiter {
   public:
    // The agent's verified session is installed: route again. The waiter is already removed.
    virtual void OnAgentArrived() = 0;

   protected:
    ~Waiter() = default;
  };

  void Add(std::string_view agent_id, Waiter* waiter);
  // A waiter that gave up (deadline, client gone).
  void Remove(std::string_view agent_id, Waiter* waiter);
  // Wakes every waiter of `agent_id`, oldest first.
  void Arrived(std::string_view agent_id);
  size_t size() const { return count_; }

 private:
  absl::flat_hash_map<std::string, std::vector<Waiter*>> waiting_;
  size_t count_ = 0;
};

}  // namespace camtunnel::gateway
