#include "gateway/agent_waiters.h"

#include <algorithm>

namespace camtunnel::gateway {
namespace {

// This absl predates std::string_view keys.
absl::string_view Key(std::string_view id) { return {id.data(), id.size()}; }

}  // namespace

void AgentWaiters::Add(std::string_view agent_id, Waiter* waiter) {
  waiting_[std::string(agent_id)].push_back(waiter);
  ++count_;
}

void AgentWaiters::Remove(std::string_view agent_id, Waiter* waiter) {
  auto it = waiting_.find(Key(agent_id));
  if (it == waiting_.end()) {
    return;
  }
  auto& list = it->second;
  if (auto w = std::find(list.begin(), list.end(), waiter); w != list.end()) {
    list.erase(w);
    --count_;
  }
  if (list.empty()) {
    waiting_.erase(it);
  }
}

void AgentWaiters::Arrived(std::string_view agent_id) {
  auto it = waiting_.find(Key(agent_id));
  if (it == waiting_.end()) {
    return;
  }
  // Taken out first: a woken waiter may wait again (and add itself back) or end.
  std::vector<Waiter*> list = std::move(it->second);
  waiting_.erase(it);
  count_ -= list.size();
  for (Waiter* w : list) {
    w->OnAgentArrived();
  }
}

}  // namespace camtunnel::gateway
