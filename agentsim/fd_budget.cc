#include "agentsim/fd_budget.h"

#include <sys/resource.h>

#include "absl/strings/str_cat.h"

namespace camtunnel::agentsim {
namespace {

// The ring, its eventfd, stdio, the metrics listener and its scrapes, /proc reads, the key file:
// a fixed handful, rounded up generously so a run never dies of EMFILE at the edge.
constexpr uint64_t kReservedFds = 64;
constexpr uint32_t kMaxProcesses = 1024;

uint64_t Share(uint64_t total, uint32_t processes) { return (total + processes - 1) / processes; }

}  // namespace

uint64_t FdsNeeded(const Options& o, uint32_t processes) {
  const bool snapshots = o.snapshot_rate > 0 || o.scenario == Scenario::kOpenRate;
  // A managed agent holds its manager link beside its gateway connection.
  const uint64_t per_agent = o.managed() ? 2 : 1;
  return per_agent * Share(o.agents, processes) + 2 * Share(o.streams, processes) +
         (snapshots ? 2 * uint64_t{o.snapshot_concurrency} : 0) + kReservedFds;
}

absl::Status CheckFdBudget(const Options& o) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return absl::OkStatus();  // cannot tell: let the run find out
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);  // best effort; getrlimit below says what we have
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  const uint64_t limit = lim.rlim_cur;
  const uint64_t need = FdsNeeded(o, o.processes);
  if (need <= limit) {
    return absl::OkStatus();
  }
  std::string fix = "no number of processes fits: lower --snapshot_concurrency or raise the limit";
  for (uint32_t n = o.processes + 1; n <= std::min(o.agents, kMaxProcesses); ++n) {
    if (FdsNeeded(o, n) <= limit) {
      fix = absl::StrCat("use --processes ", n, " (or raise the limit)");
      break;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--agents ", o.agents, " with --streams ", o.streams, " need about ", need,
      " file descriptors per process (", o.processes, o.processes == 1 ? " process" : " processes",
      "), but RLIMIT_NOFILE is ", limit, ": ", fix));
}

}  // namespace camtunnel::agentsim
