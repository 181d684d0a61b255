// See program_usage.h.
#include "runtime/program_usage.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"

namespace camtunnel::runtime {
namespace {

// Set once by InitProgramUsage; absl keeps its own copy of the filter.
std::string& FlagsFolder() {
  static std::string folder;
  return folder;
}

// The file names absl records are as the compiler saw them ("../../gateway/main.cc" in a
// build directory), so the folder is matched as a path component, not as a prefix.
bool DefinedInFolder(std::string_view file, std::string_view folder) {
  const std::string component = std::string(folder) + "/";
  return file.starts_with(component) || file.find("/" + component) != std::string_view::npos;
}

// Word-wraps `text` at 100 columns, each line indented by `indent` spaces.
std::string Wrapped(std::string_view text, size_t indent) {
  constexpr size_t kWidth = 100;
  std::string out;
  size_t column = 0;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (column > indent && column + 1 + word.size() > kWidth) {
      out += "\n";
      column = 0;
    }
    if (column == 0) {
      out.append(indent, ' ');
      column = indent;
    } else {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
  }
  return out + "\n";
}

}  // namespace

void InitProgramUsage(const ProgramUsage& usage) {
  FlagsFolder() = usage.flags_folder;
  absl::SetProgramUsageMessage(usage.message);
  auto own = [folder = usage.flags_folder](absl::string_view file) {
    return DefinedInFolder(std::string_view(file.data(), file.size()), folder);
  };
  absl::FlagsUsageConfig config;
  config.contains_help_flags = own;
  config.contains_helpshort_flags = own;
  config.contains_helppackage_flags = own;
  absl::SetFlagsUsageConfig(config);
}

std::string ProgramHelp() {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!flag->IsRetired() && DefinedInFolder(flag->Filename(), FlagsFolder())) {
      flags.push_back(flag);
    }
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::string out = absl::StrCat(absl::ProgramUsageMessage(), "\n\nflags:\n");
  for (const absl::CommandLineFlag* flag : flags) {
    // An empty default is shown as "" so that it reads as a value.
    std::string value = flag->DefaultValue();
    if (flag->IsOfType<std::string>()) {
      value = absl::StrCat("\"", value, "\"");
    }
    absl::StrAppend(&out, "  --", flag->Name(), " (default: ", value, ")\n");
    out += Wrapped(flag->Help(), 6);
  }
  return out;
}

void ExitIfHelpRequested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      break;
    }
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpshort" ||
        arg == "-helpshort") {
      std::fputs(ProgramHelp().c_str(), stdout);
      std::exit(0);
    }
  }
}

std::vector<char*> ParseProgramCommandLine(int argc, char** argv, const ProgramUsage& usage) {
  InitProgramUsage(usage);
  ExitIfHelpRequested(argc, argv);
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace camtunnel::runtime
