#include "agentsim/scenario_policy.h"

namespace camtunnel::agentsim {

std::unique_ptr<ScenarioPolicy> MakePolicy(const Options& options) {
  switch (options.scenario) {
    case Scenario::kSteady:
      // Steady load is the common run itself; --churn_rate still works if asked for.
      return options.churn_rate > 0 ? MakeChurnPolicy() : std::make_unique<ScenarioPolicy>();
    case Scenario::kChurn:
    case Scenario::kSoak:
      // Soak is churn at a low rate plus the gateway's process samples, which the runner takes
      // whenever --gateway_pid is given.
      return MakeChurnPolicy();
    case Scenario::kStorm:
      return MakeStormPolicy();
    case Scenario::kOpenRate:
      return MakeOpenRatePolicy();
  }
  return std::make_unique<ScenarioPolicy>();
}

}  // namespace camtunnel::agentsim
