// --help for the programs whose flags are absl flags (gateway, manager, agentsim): the usage
// message (synopsis, subcommands) and every flag the program defines, with its default, on
// stdout, exit status 0. absl's own --help lists only the flags defined in a file named like the
// program (ours live in main.cc or options.cc) and exits 1.
#pragma once

#include <string>
#include <vector>

namespace camtunnel::runtime {

struct ProgramUsage {
  // absl::SetProgramUsageMessage: what the program does, its synopsis and its subcommands.
  std::string message;
  // The program's own flags are those defined in a file under this source folder ("gateway").
  std::string flags_folder;
};

// Installs the usage message and absl's usage configuration (so --helpshort and --help=WORD
// also find the program's flags). Call before anything reads argv.
void InitProgramUsage(const ProgramUsage& usage);

// The text --help prints: the usage message, then each flag as `--name (default: value)` and
// its help, sorted by name.
std::string ProgramHelp();

// With --help, -help, -h or --helpshort before any "--": prints ProgramHelp() and exits 0.
void ExitIfHelpRequested(int argc, char** argv);

// InitProgramUsage, ExitIfHelpRequested, then absl::ParseCommandLine (which exits 1 on a flag
// it cannot parse). Returns the positional arguments, argv[0] first.
std::vector<char*> ParseProgramCommandLine(int argc, char** argv, const ProgramUsage& usage);

}  // namespace camtunnel::runtime
