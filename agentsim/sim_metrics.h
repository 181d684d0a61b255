// agentsim's counters as Prometheus text (prefix camtunnel_agentsim_, base units, _total
// counters, low-cardinality labels only: results and kinds, never agent ids).
#pragma once

#include <string>

#include "agentsim/fleet.h"
#include "agentsim/sim_stats.h"

namespace camtunnel::agentsim {

std::string RenderMetrics(const SimStats& stats, const Fleet& fleet);

}  // namespace camtunnel::agentsim
