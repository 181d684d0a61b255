// Rules that span several options of a GatewayConfig, checked at start-up, by --check_config and
// on every SIGHUP before anything changes: listeners beyond loopback need their guards (admin
// token; frontend allowlist and token), a TLS listener needs a certificate, names and ranges are
// valid. Also reads the secret files (tokens) the config names, so a reload re-reads them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gateway/config.h"

namespace camtunnel::gateway {

// Loopback means every address the listener accepts on is a loopback address: 127.0.0.0/8 or
// [::1]. A wildcard (0.0.0.0, [::]) or any other address is beyond loopback.
bool IsLoopbackListen(std::string_view address);

// Reads the token files into config->admin_token / frontend_token (first line, at least 16
// characters) and checks every cross-option rule. The message says which option is wrong and why.
absl::Status ResolveConfig(GatewayConfig* config);

// Options that only a restart changes (the listeners), named when `fresh` differs from `running`.
std::vector<std::string> RestartOnlyChanges(const GatewayConfig& running,
                                            const GatewayConfig& fresh);

}  // namespace camtunnel::gateway
