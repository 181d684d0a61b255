// The agent's configuration: command-line parsing and validation. Every value is checked where
// it enters, with a message that names the option and says what is expected; nothing is
// "fixed up" (an agent id `Cam-1` is an error, not `cam-1`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/http_proxy.h"
#include "agent/log.h"
#include "agent/pin.h"
#include "proto/crypto.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

struct GatewayUrl {
  bool tls = true;
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  std::string text;  // as given, for logs
};

// Managed mode (--state_file): the agent activates itself and takes its Streamers from the
// manager; --gateway/--agent_id/--key_ref/--key_file are then not used.
struct ManagedConfig {
  std::string state_file;
  GatewayUrl activation_url;
  std::string serial;
  std::string factory_secret_file;
  std::string operator_id;
  int64_t reactivate_after_ms = 600000;
};

struct Config {
  bool managed = false;
  ManagedConfig manage;
  GatewayUrl gateway;
  std::string agent_id;
  proto::KeyRef key_ref;
  std::string key_file;
  proto::Digest agent_key{};  // loaded from key_file by LoadKeyFile()
  std::vector<proto::ServiceEntry> services;
  std::string ca_file;
  PinSet pins;
  std::string server_name;  // defaults to gateway.host
  bool insecure = false;
  bool kernel_tls = true;  // --no_kernel_tls: OpenSSL encrypts even where the kernel could
  LogLevel log_level = LogLevel::kInfo;
  std::shared_ptr<const ProxyConfig> proxy;  // --proxy; null: direct
  // One line per deprecated (hyphenated) flag spelling given, for the caller to log once the
  // log level is set: "--agent-id is deprecated, use --agent_id".
  std::vector<std::string> deprecation_warnings;
};

enum class ParseOutcome { kOk, kHelp, kVersion, kError };

// Parses argv (getopt_long; resets getopt's state so it can be called repeatedly). Flags are
// spelled with underscores (--agent_id); the hyphenated spellings of earlier releases still
// work and are named in Config::deprecation_warnings. On kError,
// `*error` holds a one-line message; the caller exits with status 2. Does not read the key file.
ParseOutcome ParseCommandLine(int argc, char** argv, Config* config, std::string* error);
std::string UsageText();

// `https://host[:port]` (default 443) or `http://host[:port]` (default 80); host is a DNS name,
// an IPv4 address or a bracketed IPv6 address. An optional single trailing '/' is allowed;
// user info, paths, queries and fragments are not.
bool ParseGatewayUrl(std::string_view text, GatewayUrl* out, std::string* error);

// Reads the 64-hex-character agent key (surrounding whitespace ignored). Warns (does not fail)
// when the file is readable by other users.
bool LoadKeyFile(const std::string& path, proto::Digest* key, std::string* error);

}  // namespace camtunnel::agent
