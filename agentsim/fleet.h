// All simulated agents of the process: creates them (ids <prefix><n>, each with its own K
// derived from the streamer key, or in managed mode with none until its manager assigns one),
// paces their connection attempts (at most
// --connect_concurrency handshakes in flight, at most --connect_rate new ones per second: the
// simulator must not be the bottleneck it measures), and keeps the set of agents that are up,
// for picking cameras to load and agents to churn. It also times recoveries: from the moment
// the fleet stops being complete until it is complete again (storm).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "agentsim/connect_budget.h"
#include "agentsim/sim_agent.h"
#include "agentsim/sim_context.h"
#include "agentsim/streamer_key_file.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class Fleet final : public AgentObserver {
 public:
  // `expiry_s`: the agents' key expiry (Unix seconds). `key` null: managed mode (each agent's
  // gateway and key come from its manager, managed_fleet.h).
  Fleet(SimContext& ctx, const StreamerKey* key, uint64_t expiry_s);
  ~Fleet();

  // Starts every agent's connection (not in managed mode: Connect() then comes from ASSIGN).
  void Start();
  // Queues `agent` for a connection attempt under the fleet's pacing.
  void Enqueue(SimAgent& agent) { OnReconnectDue(agent); }
  SimAgent& agent(size_t i) { return *agents_[i]; }
  void Stop();

  size_t size() const { return agents_.size(); }
  size_t up() const { return up_.size(); }
  bool complete() const { return up_.size() == agents_.size(); }
  // A uniformly chosen agent that is up, or null.
  const AgentIdentity* RandomUp();
  // Churn: one random agent that is up loses its control connection for `down_ms`.
  void DropRandom(uint64_t down_ms);
  // Storm: every agent that is up loses its control connection at once and comes back as a real
  // agent would (within WELCOME's window unless --noreconnect_window).
  void DropAll();

  // The first time every agent was up (monotonic ms), 0 until then.
  uint64_t first_complete_ms() const { return first_complete_ms_; }
  // Recoveries: each time the fleet went from complete to incomplete and back, how long it took.
  const std::vector<uint64_t>& recoveries_ms() const { return recoveries_ms_; }
  // When the fleet last stopped being complete (0: it is complete, or never was).
  uint64_t incomplete_since_ms() const { return incomplete_since_ms_; }
  uint32_t connecting() const { return in_flight_; }

  void OnAgentUp(SimAgent& agent) override;
  void OnAgentDown(SimAgent& agent) override;
  void OnAttemptEnded(SimAgent& agent) override;
  void OnReconnectDue(SimAgent& agent) override;

 private:
  void Pump();

  SimContext& ctx_;
  bool managed_;
  std::vector<std::unique_ptr<SimAgent>> agents_;
  std::vector<SimAgent*> up_;
  std::deque<SimAgent*> waiting_;  // agents due to connect, in order
  uint32_t in_flight_ = 0;
  ConnectBudget budget_;  // --connect_rate
  uint64_t first_complete_ms_ = 0;
  uint64_t incomplete_since_ms_ = 0;
  std::vector<uint64_t> recoveries_ms_;
  runtime::Timer pump_timer_;
};

}  // namespace camtunnel::agentsim
