// One report from the reports of several worker processes (--processes): what one process would
// have reported for the whole fleet. Counts are summed; latencies are merged from the raw
// histograms (exact, as if one process had recorded every sample); times (time to connect all,
// load length, recovery) are the slowest worker's; the scenario's section is merged the same
// way (numbers summed, durations maxed, flags all-true) with every worker's own section kept
// under scenario_detail.workers.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace camtunnel::agentsim {

// InvalidArgument when a report lacks what the merge needs (its histograms).
absl::StatusOr<nlohmann::json> MergeReports(const std::vector<nlohmann::json>& reports);

}  // namespace camtunnel::agentsim
