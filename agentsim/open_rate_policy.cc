// open-rate: snapshot requests (each one a full tunnel open: OPEN, data connection, camera
// answer) at a rate that starts at --start_rate and grows by --rate_step every --step_seconds,
// until a step's p99 open latency exceeds --max_p99_ms, its failed opens exceed
// --max_error_ratio, the driver could not keep the rate (--snapshot_concurrency in flight), or
// --max_rate is passed. The result is the last rate that passed, with every step's figures.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agentsim/scenario_policy.h"

namespace camtunnel::agentsim {
namespace {

struct Step {
  double rate = 0;
  double achieved_per_s = 0;
  uint64_t opens = 0;
  uint64_t failures = 0;
  uint64_t skipped = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  bool passed = false;
};

class OpenRatePolicy final : public ScenarioPolicy {
 public:
  void Begin(ScenarioEnv& env) override {
    rate_ = env.ctx.options.start_rate;
    StartStep(env, env.load_start_ms);
  }

  void Tick(ScenarioEnv& env, uint64_t now_ms) override {
    const Options& o = env.ctx.options;
    if (done_ || now_ms - step_start_ms_ < static_cast<uint64_t>(o.step_s * 1000)) {
      return;
    }
    const OpenWindow& w = env.driver.window();
    Step s;
    s.rate = rate_;
    s.opens = w.opens;
    s.failures = w.failures;
    s.skipped = w.skipped;
    s.achieved_per_s =
        static_cast<double>(w.opens) * 1000.0 / static_cast<double>(now_ms - step_start_ms_);
    s.p50_ms = static_cast<double>(w.latency_us.Percentile(0.50)) / 1000.0;
    s.p99_ms = static_cast<double>(w.latency_us.Percentile(0.99)) / 1000.0;
    const double error_ratio = w.opens == 0 ? 1.0 : static_cast<double>(w.failures) / w.opens;
    if (s.p99_ms > o.max_p99_ms) {
      stop_reason_ = "p99";
    } else if (error_ratio > o.max_error_ratio) {
      stop_reason_ = "errors";
    } else if (w.skipped > 0) {
      stop_reason_ = "concurrency";
    }
    s.passed = stop_reason_.empty();
    steps_.push_back(s);
    if (s.passed) {
      sustained_ = rate_;
      rate_ += o.rate_step;
      if (o.rate_step <= 0 || rate_ > o.max_rate) {
        stop_reason_ = "max_rate";
      }
    }
    if (!stop_reason_.empty()) {
      done_ = true;
      env.driver.set_snapshot_rate(0);
      return;
    }
    StartStep(env, now_ms);
  }

  bool Done(const ScenarioEnv& /*env*/) const override { return done_; }

  nlohmann::json Report(const ScenarioEnv& /*env*/) const override {
    nlohmann::json steps = nlohmann::json::array();
    for (const Step& s : steps_) {
      steps.push_back({{"rate_per_s", s.rate},
                       {"achieved_per_s", s.achieved_per_s},
                       {"opens", s.opens},
                       {"failures", s.failures},
                       {"skipped", s.skipped},
                       {"p50_ms", s.p50_ms},
                       {"p99_ms", s.p99_ms},
                       {"passed", s.passed}});
    }
    return {{"sustained_rate_per_s", sustained_},
            {"stop_reason", stop_reason_.empty() ? "duration" : stop_reason_},
            {"steps", steps}};
  }

  std::string Summary(const ScenarioEnv& /*env*/) const override {
    std::string s = absl::StrCat("open-rate: sustained ", sustained_, " opens/s (stopped by ",
                                 stop_reason_.empty() ? "duration" : stop_reason_, ")");
    for (const Step& st : steps_) {
      absl::StrAppend(&s, "\n  step ", st.rate, "/s: ", st.opens, " opens, ", st.failures,
                      " failed, p50 ", st.p50_ms, " ms, p99 ", st.p99_ms, " ms",
                      st.passed ? "" : "  <- limit");
    }
    return s;
  }

 private:
  void StartStep(ScenarioEnv& env, uint64_t now_ms) {
    env.driver.set_snapshot_rate(rate_);
    env.driver.ResetWindow();
    step_start_ms_ = now_ms;
  }

  double rate_ = 0;
  double sustained_ = 0;
  uint64_t step_start_ms_ = 0;
  bool done_ = false;
  std::string stop_reason_;
  std::vector<Step> steps_;
};

}  // namespace

std::unique_ptr<ScenarioPolicy> MakeOpenRatePolicy() { return std::make_unique<OpenRatePolicy>(); }

}  // namespace camtunnel::agentsim
