// What makes each scenario different, on top of the common run (connect the fleet, run the load
// for --duration, stop, report; sim_runner.h): a policy gets the load phase's start, a tick
// every 100 ms, may end the load phase early, and adds its own section to the report.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agentsim/fleet.h"
#include "agentsim/load_driver.h"
#include "agentsim/sim_context.h"
#include "nlohmann/json.hpp"

namespace camtunnel::agentsim {

struct ScenarioEnv {
  SimContext& ctx;
  Fleet& fleet;
  LoadDriver& driver;
  uint64_t load_start_ms = 0;
};

class ScenarioPolicy {
 public:
  static constexpr uint64_t kTickMs = 100;

  virtual ~ScenarioPolicy() = default;
  virtual void Begin(ScenarioEnv& /*env*/) {}
  virtual void Tick(ScenarioEnv& /*env*/, uint64_t /*now_ms*/) {}
  // True ends the load phase before --duration (storm recovered, ramp finished).
  virtual bool Done(const ScenarioEnv& /*env*/) const { return false; }
  // The scenario's own report section, and a line or two for the human summary.
  virtual nlohmann::json Report(const ScenarioEnv& /*env*/) const {
    return nlohmann::json::object();
  }
  virtual std::string Summary(const ScenarioEnv& /*env*/) const { return ""; }
};

std::unique_ptr<ScenarioPolicy> MakePolicy(const Options& options);
// Each defined in its own file.
std::unique_ptr<ScenarioPolicy> MakeChurnPolicy();
std::unique_ptr<ScenarioPolicy> MakeStormPolicy();
std::unique_ptr<ScenarioPolicy> MakeOpenRatePolicy();

}  // namespace camtunnel::agentsim
