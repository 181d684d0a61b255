// One run of a scenario, start to report:
//   1. connect: every agent dials (paced), until all are up or --connect_timeout;
//   2. load: the media load and the scenario's policy, for --duration (or until the policy ends
//      it);
//   3. stop: sessions end cleanly (TEARDOWN), agents close, the shard shuts down;
//   4. report: human summary on stdout, JSON to --json_out.
// Progress lines for scripts go to stdout as "agentsim: ..." (the first word after the colon
// names the event: "metrics", "agents-up", "load-done").
#pragma once

#include "agentsim/options.h"

namespace camtunnel::agentsim {

// Exit status: 0 when no integrity error was found, 1 when one was, 2 for a bad parameter found
// late (a file that cannot be read), 3 when the runtime cannot start.
int RunSimulation(const Options& options);

// Set from a signal handler: the run stops its current phase and reports.
void RequestInterrupt();
// True once RequestInterrupt ran (the coordinator passes it on to its workers).
bool Interrupted();

}  // namespace camtunnel::agentsim
