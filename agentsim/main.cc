// camtunnel-agentsim: thousands of simulated agents and cameras in one process, speaking real
// camtunnel/1 to a gateway, and the media server's load through its frontend, with every byte
// verified. See agentsim/README.md.
#include <signal.h>

#include <cstdio>
#include <string>

#include "agentsim/coordinator.h"
#include "agentsim/fd_budget.h"
#include "agentsim/options.h"
#include "agentsim/sim_runner.h"
#include "runtime/program_usage.h"

namespace {

void OnSignal(int /*sig*/) { camtunnel::agentsim::RequestInterrupt(); }

}  // namespace

int main(int argc, char** argv) {
  camtunnel::runtime::InitProgramUsage(
      {.message = camtunnel::agentsim::UsageMessage(), .flags_folder = "agentsim"});
  camtunnel::runtime::ExitIfHelpRequested(argc, argv);
  auto options = camtunnel::agentsim::ParseOptions(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "agentsim: %s\n%s", std::string(options.status().message()).c_str(),
                 "run 'camtunnel-agentsim --help' for the flags\n");
    return 2;
  }
  if (absl::Status s = camtunnel::agentsim::CheckFdBudget(*options); !s.ok()) {
    std::fprintf(stderr, "agentsim: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  // SIGINT/SIGTERM end the current phase; the run still stops cleanly and reports.
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (options->processes > 1) {
    return camtunnel::agentsim::RunCoordinator(*options, argc, argv);
  }
  return camtunnel::agentsim::RunSimulation(*options);
}
