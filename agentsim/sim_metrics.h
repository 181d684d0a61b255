// agentsim's counters as Prometheus text (prefix camtunnel_agentsim_, base units, _total
// counters, low-cardinality labels only: results and kinds, never agent ids).
#pragma once

#include <string>

#include "agentsim/fleet.h"
#include "agentsim/sim_stats.h"

namespace camtunnel::agentsim {

// `live`: what sessions still in progress have found so far (LoadDriver::LiveIntegrity).
// `managed`: with the managed mode's families (activations, manager links).
std::string RenderMetrics(const SimStats& stats, const Fleet& fleet, const IntegrityCounts& live,
                          bool managed = false);

}  // namespace camtunnel::agentsim
