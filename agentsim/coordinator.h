// --processes N: one process holds at most RLIMIT_NOFILE sockets (20,000 here), so a larger
// fleet is several processes. The coordinator starts N workers of this same binary, each with a
// disjoint share: agents (disjoint index ranges, --agent_index_base), --sources (split when
// there are at least N, shared otherwise), streams and rates (divided), /metrics (port+i).
// Workers send a status line each second on stdout; the coordinator draws the fleet's progress
// line from their sum, prints the usual "agentsim: agents-up/load-done" lines once every worker
// got there, and at the end merges their JSON reports (report_merge.h) into one report and one
// human summary. Workers run their phases independently (they start together, so the phases line
// up to within the connect time).
#pragma once

#include "agentsim/options.h"

namespace camtunnel::agentsim {

// Same exit status as RunSimulation; a worker that fails with 2 or 3 fails the run with it.
int RunCoordinator(const Options& options, int argc, char** argv);

}  // namespace camtunnel::agentsim
