// Managed mode's side of the fleet: one ManagedSimAgent per simulated agent (managed_agent.h),
// each with the factory secret of its serial (its id) derived from the factory master key, as
// the factory writes it into a camera. Paces first activations as the fleet paces connections
// (--connect_concurrency in flight, --connect_rate per second), hands the gateway connections
// that ASSIGN asks for to the fleet's pacing, and times the run's managed milestones.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "agentsim/connect_budget.h"
#include "agentsim/fleet.h"
#include "agentsim/managed_agent.h"
#include "agentsim/sim_context.h"
#include "agentsim/url_endpoint.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class ManagedFleet final : public ManagedAgentObserver {
 public:
  ManagedFleet(SimContext& ctx, Fleet& fleet, const UrlEndpoint& activation,
               std::span<const uint8_t> factory_master);
  ~ManagedFleet();

  void Start();
  void Stop();

  size_t size() const { return agents_.size(); }
  // Agents whose manager link is up now.
  size_t linked() const;
  // When the fleet started (monotonic ms) and when every agent had linked once (0: not yet).
  uint64_t start_ms() const { return start_ms_; }
  uint64_t all_linked_ms() const { return all_linked_ms_; }

  void OnFirstActivationEnded() override;
  void OnFirstLink() override;
  void ConnectGateway(SimAgent& agent) override { fleet_.Enqueue(agent); }

 private:
  void Pump();

  SimContext& ctx_;
  Fleet& fleet_;
  std::vector<std::unique_ptr<ManagedSimAgent>> agents_;
  std::deque<ManagedSimAgent*> waiting_;  // first activations not started yet
  uint32_t in_flight_ = 0;
  ConnectBudget budget_;  // --connect_rate
  size_t ever_linked_ = 0;
  uint64_t start_ms_ = 0;
  uint64_t all_linked_ms_ = 0;
  runtime::Timer pump_timer_;
};

// The factory master key file: 64 hex digits (surrounding whitespace allowed).
absl::StatusOr<std::vector<uint8_t>> LoadFactoryMaster(const std::string& path);

}  // namespace camtunnel::agentsim
