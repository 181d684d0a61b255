// The gateway's TOML configuration file (`--config FILE`): one top-level key per option, named
// as its command-line flag (docs/configuration.md lists them with their defaults). Parsing only:
// cross-field rules and secret files are config_check.h's job.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gateway/config.h"

namespace camtunnel::gateway {

// Reads `path` and sets every key it holds on *config (keys it does not hold keep their value).
// Unknown keys, wrong types and out-of-range numbers are errors, so a typo never passes
// silently. Errors read "<path>:<line>:<column>: <key>: <what is wrong>".
absl::Status ApplyConfigFile(const std::string& path, GatewayConfig* config);
// The same for TOML text already in memory (`source_name` stands in for the path in errors).
absl::Status ApplyConfigText(std::string_view text, std::string_view source_name,
                             GatewayConfig* config);

}  // namespace camtunnel::gateway
