// The end-of-run report: one JSON document (--json_out) and a human summary (stdout), from the
// counters, the fleet, the scenario's own section and the process samples.
#pragma once

#include <optional>
#include <string>

#include "agentsim/fleet.h"
#include "agentsim/options.h"
#include "agentsim/proc_sampler.h"
#include "agentsim/sim_stats.h"
#include "nlohmann/json.hpp"

namespace camtunnel::agentsim {

struct ReportInput {
  const Options& options;
  const SimStats& stats;
  const Fleet& fleet;
  std::optional<double> connect_all_s;  // time until every agent was first up
  double load_s = 0;                    // length of the load phase
  size_t up_at_end_of_load = 0;
  double connect_cpu_s = 0;  // agentsim's own CPU during the connect phase
  bool interrupted = false;
  nlohmann::json scenario;  // the policy's section
  std::string scenario_summary;
  const ProcSampler* self = nullptr;
  const ProcSampler* gateway = nullptr;  // --gateway_pid
  // Managed mode: when the fleet started, when every agent had first linked to its manager (0:
  // never), and how many links were up when the load phase ended.
  uint64_t managed_start_ms = 0;
  uint64_t managed_all_linked_ms = 0;
  size_t manager_links_at_end_of_load = 0;
};

nlohmann::json BuildReport(const ReportInput& in);
std::string HumanSummary(const nlohmann::json& report, const std::string& scenario_summary);

// Percentiles of a histogram of microseconds, in milliseconds.
nlohmann::json LatencyJson(const LatencyHistogram& h);

}  // namespace camtunnel::agentsim
