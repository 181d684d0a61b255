// How many active agents each Streamer is assigned, kept in memory: the least-loaded choice of
// every ASSIGN reads it instead of counting rows. Updated as this manager assigns and
// deactivates, and reconciled from the store periodically (ManagerServer), which also takes in
// what other managers on the same database assigned.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace camtunnel::manager {

class StreamerLoad {
 public:
  // An agent's assignment changed from `from` to `to` (either may be empty: none).
  void Moved(std::string_view from, std::string_view to);
  // Agents assigned to `url`, not counting the agent whose current assignment is `self_url`
  // (its own assignment is not load it adds).
  uint64_t Load(std::string_view url, std::string_view self_url = {}) const;
  // The store's counts replace ours.
  void Reconcile(std::map<std::string, uint64_t, std::less<>> counts) {
    counts_ = std::move(counts);
    ++reconciled_;
  }
  uint64_t reconciled() const { return reconciled_; }
  const std::map<std::string, uint64_t, std::less<>>& counts() const { return counts_; }

 private:
  std::map<std::string, uint64_t, std::less<>> counts_;
  uint64_t reconciled_ = 0;
};

}  // namespace camtunnel::manager
