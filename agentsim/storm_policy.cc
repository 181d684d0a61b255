// storm: every agent reconnects at once and the time until all are back is measured.
//   --storm_trigger=self     --storm_after seconds into the load, every control connection is
//                            cut at once; agents come back as real ones would (within
//                            WELCOME's reconnect window, or at once with --noreconnect_window).
//   --storm_trigger=gateway  nothing is done here: the operator (or test) restarts the gateway,
//                            the agents notice (GOAWAY, reset, heartbeat) and reconnect.
// The storm starts when the fleet stops being complete and ends when it is complete again,
// which also ends the load phase, --after_storm seconds later (media keeps flowing meanwhile, so
// a run can show tunnels open again on the reconnected agents).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agentsim/scenario_policy.h"

namespace camtunnel::agentsim {
namespace {

class StormPolicy final : public ScenarioPolicy {
 public:
  void Tick(ScenarioEnv& env, uint64_t now_ms) override {
    const Options& o = env.ctx.options;
    if (start_ms_ == 0 && o.storm_trigger == StormTrigger::kSelf && env.fleet.complete() &&
        now_ms >= env.load_start_ms + static_cast<uint64_t>(o.storm_after_s * 1000)) {
      start_ms_ = now_ms;
      dropped_ = env.fleet.up();
      attempts_before_ = env.ctx.stats.agents.connect_attempts;
      env.fleet.DropAll();
    }
    if (start_ms_ == 0 && env.fleet.incomplete_since_ms() != 0) {
      start_ms_ = env.fleet.incomplete_since_ms();  // the gateway dropped them
      attempts_before_ = env.ctx.stats.agents.connect_attempts;
    }
    if (start_ms_ != 0 && !env.fleet.recoveries_ms().empty() && recovery_ms_ < 0) {
      recovery_ms_ = static_cast<int64_t>(env.fleet.recoveries_ms().back());
      recovered_at_ms_ = now_ms;
      attempts_ = env.ctx.stats.agents.connect_attempts - attempts_before_;
    }
    lowest_up_ = start_ms_ != 0 ? std::min(lowest_up_, env.fleet.up()) : lowest_up_;
  }

  bool Done(const ScenarioEnv& env) const override {
    return recovery_ms_ >= 0 &&
           env.ctx.shard.now_ms() >=
               recovered_at_ms_ + static_cast<uint64_t>(env.ctx.options.after_storm_s * 1000);
  }

  nlohmann::json Report(const ScenarioEnv& env) const override {
    const bool self = env.ctx.options.storm_trigger == StormTrigger::kSelf;
    const size_t lowest = start_ms_ != 0 ? lowest_up_ : env.fleet.up();
    nlohmann::json j = {{"trigger", self ? "self" : "gateway"},
                        {"started", start_ms_ != 0},
                        {"agents_dropped", self ? dropped_ : env.fleet.size() - lowest},
                        {"lowest_up", lowest},
                        {"recovered", recovery_ms_ >= 0},
                        {"reconnect_attempts", attempts_},
                        {"honour_reconnect_window", env.ctx.options.honour_reconnect_window}};
    j["recovery_s"] =
        recovery_ms_ >= 0 ? nlohmann::json(static_cast<double>(recovery_ms_) / 1000.0) : nullptr;
    return j;
  }

  std::string Summary(const ScenarioEnv& env) const override {
    if (start_ms_ == 0) {
      return "storm: never started (the fleet stayed complete)";
    }
    if (recovery_ms_ < 0) {
      return absl::StrCat("storm: NOT recovered: ", env.fleet.up(), "/", env.fleet.size(),
                          " up at the end");
    }
    return absl::StrCat("storm: all ", env.fleet.size(), " agents back in ",
                        static_cast<double>(recovery_ms_) / 1000.0, " s (", attempts_,
                        " connection attempts)");
  }

 private:
  uint64_t start_ms_ = 0;
  size_t dropped_ = 0;
  size_t lowest_up_ = SIZE_MAX;
  int64_t recovery_ms_ = -1;
  uint64_t recovered_at_ms_ = 0;
  uint64_t attempts_before_ = 0;
  uint64_t attempts_ = 0;
};

}  // namespace

std::unique_ptr<ScenarioPolicy> MakeStormPolicy() { return std::make_unique<StormPolicy>(); }

}  // namespace camtunnel::agentsim
