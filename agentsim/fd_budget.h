// Up-front check that a run fits the process's file-descriptor limit: one socket per agent (two
// in managed mode: its manager link too), two per RTSP stream (data connection + frontend
// connection), two per snapshot in flight, and a reserve for the ring, the metrics listener and
// stdio. Beyond the limit a run would fail
// half-way with EMFILE; here it is one clear message, with how many --processes would fit.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "agentsim/options.h"

namespace camtunnel::agentsim {

// Descriptors one of `processes` processes needs for its share of `o`'s fleet and load.
uint64_t FdsNeeded(const Options& o, uint32_t processes);

// Raises the soft RLIMIT_NOFILE to the hard limit, then checks o.processes' share fits.
// InvalidArgument (exit 2) with the number of processes that would fit, if any does.
absl::Status CheckFdBudget(const Options& o);

}  // namespace camtunnel::agentsim
