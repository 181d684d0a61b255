// churn: while the load runs, agents lose their control connection at --churn_rate per second
// (cut from our side, as when the agent restarts) and come back after --churn_down_ms. Their data
// tunnels are separate connections and keep flowing; the gateway must replace sessions and
// keep serving opens for the agents that are up.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agentsim/scenario_policy.h"

namespace camtunnel::agentsim {
namespace {

class ChurnPolicy final : public ScenarioPolicy {
 public:
  void Begin(ScenarioEnv& env) override { last_ms_ = env.load_start_ms; }

  void Tick(ScenarioEnv& env, uint64_t now_ms) override {
    const Options& o = env.ctx.options;
    tokens_ += o.churn_rate * static_cast<double>(now_ms - last_ms_) / 1000.0;
    last_ms_ = now_ms;
    while (tokens_ >= 1) {
      tokens_ -= 1;
      if (env.fleet.up() > 0) {
        env.fleet.DropRandom(o.churn_down_ms);
        ++drops_;
      }
    }
  }

  nlohmann::json Report(const ScenarioEnv& env) const override {
    return {{"churn_rate_per_s", env.ctx.options.churn_rate},
            {"churn_down_ms", env.ctx.options.churn_down_ms},
            {"drops", drops_}};
  }

  std::string Summary(const ScenarioEnv& env) const override {
    return absl::StrCat("churn: ", drops_, " control connections dropped (",
                        env.ctx.options.churn_rate, "/s, down ", env.ctx.options.churn_down_ms,
                        " ms)");
  }

 private:
  uint64_t last_ms_ = 0;
  double tokens_ = 0;
  uint64_t drops_ = 0;
};

}  // namespace

std::unique_ptr<ScenarioPolicy> MakeChurnPolicy() { return std::make_unique<ChurnPolicy>(); }

}  // namespace camtunnel::agentsim
