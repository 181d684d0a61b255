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
#include "runtime/log.h"
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
    camtunnel::runtime::LogEvent(
        camtunnel::runtime::LogLevel::kError, "config_error",
        {camtunnel::runtime::Kv("error", options.status().message()),
         camtunnel::runtime::Kv("hint", "run 'camtunnel-agentsim --help' for the flags")});
    return 2;
  }
  if (absl::Status s = camtunnel::agentsim::CheckFdBudget(*options); !s.ok()) {
    camtunnel::runtime::LogEvent(camtunnel::runtime::LogLevel::kError, "fd_budget_exceeded",
                                 {camtunnel::runtime::Kv("error", s.message())});
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
