#include "gateway/config_check.h"

#include <netinet/in.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/source_allowlist.h"
#include "runtime/listener.h"
#include "runtime/log.h"

namespace camtunnel::gateway {
namespace {

// Tokens shorter than this are guessable by a patient client.
constexpr size_t kMinTokenChars = 16;

absl::Status ReadToken(std::string_view option, const std::string& path, std::string* token) {
  token->clear();
  if (path.empty()) {
    return absl::OkStatus();
  }
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(option.data(), option.size()), ": cannot read ", path));
  }
  std::getline(in, *token);
  while (!token->empty() && (token->back() == '\r' || token->back() == ' ')) {
    token->pop_back();
  }
  if (token->size() < kMinTokenChars) {
    token->clear();
    // The message never quotes the file's content: it is a secret, even when too short.
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(option.data(), option.size()), ": the first line of ", path,
                     " must hold a token of at least ", kMinTokenChars, " characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckListeners(std::string_view option, const std::vector<std::string>& list) {
  for (const std::string& a : list) {
    if (auto parsed = runtime::ParseListenAddress(a); !parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          absl::string_view(option.data(), option.size()), ": ", parsed.status().message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackListen(std::string_view address) {
  auto parsed = runtime::ParseListenAddress(std::string(address));
  if (!parsed.ok()) {
    return false;
  }
  if (parsed->ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&*parsed);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&*parsed);
  return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

absl::Status ResolveConfig(GatewayConfig* c) {
  if (c->shards > 255) {
    // A tunnel id names its shard in one byte.
    return absl::InvalidArgumentError("shards: at most 255 (0: one per online CPU)");
  }
  if (absl::Status s = ReadToken("admin_token_file", c->admin_token_file, &c->admin_token);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadToken("frontend_token_file", c->frontend_token_file, &c->frontend_token);
      !s.ok()) {
    return s;
  }
  for (auto [option, list] : {std::pair{"agent_tls_listen", &c->agent_tls_listen},
                              std::pair{"agent_plain_listen", &c->agent_plain_listen},
                              std::pair{"frontend_listen", &c->frontend_listen},
                              std::pair{"admin_listen", &c->admin_listen}}) {
    if (absl::Status s = CheckListeners(option, *list); !s.ok()) {
      return s;
    }
  }
  if (c->agent_tls_listen.empty() && c->agent_plain_listen.empty()) {
    return absl::InvalidArgumentError(
        "no agent listener: set agent_tls_listen and/or agent_plain_listen");
  }
  if (!c->agent_tls_listen.empty() && (c->cert_file.empty() || c->key_file.empty())) {
    return absl::InvalidArgumentError("agent_tls_listen needs cert and key");
  }
  if (c->cert_file.empty() != c->key_file.empty()) {
    return absl::InvalidArgumentError("cert and key go together: set both or neither");
  }
  if (c->streamer_keys_file.empty()) {
    return absl::InvalidArgumentError("streamer_keys: no streamer keys file given");
  }
  for (const std::string& a : c->admin_listen) {
    if (!IsLoopbackListen(a) && c->admin_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin_listen ", a,
          " is beyond loopback: set admin_token_file (the admin API kicks agents and drains)"));
    }
  }
  auto allow = SourceAllowlist::Parse(c->frontend_allow);
  if (!allow.ok()) {
    return allow.status();
  }
  for (const std::string& a : c->frontend_listen) {
    if (IsLoopbackListen(a)) {
      continue;
    }
    if (c->frontend_allow.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frontend_listen ", a,
          " is beyond loopback: set frontend_allow (the media servers' source CIDRs)"));
    }
    if (c->frontend_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frontend_listen ", a,
          " is beyond loopback: set frontend_token_file (HTTP and CONNECT clients send it)"));
    }
  }
  runtime::LogLevel level;
  if (!runtime::ParseLogLevel(c->log_level, &level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("log_level: '", c->log_level, "' is not debug, info, warning or error"));
  }
  if (c->heartbeat_ms < 100 || c->heartbeat_misses < 1) {
    return absl::InvalidArgumentError("heartbeat_ms must be >= 100 and heartbeat_misses >= 1");
  }
  if (c->spare_data_connections > 4 || c->spare_data_connections_max > 4 ||
      c->spare_data_connections_max < c->spare_data_connections || c->spare_idle_ms < 1000) {
    return absl::InvalidArgumentError(
        "spare_data_connections must be 0..4, spare_data_connections_max "
        "spare_data_connections..4, and spare_idle_ms >= 1000");
  }
  return absl::OkStatus();
}

std::vector<std::string> RestartOnlyChanges(const GatewayConfig& running,
                                            const GatewayConfig& fresh) {
  std::vector<std::string> changed;
  if (running.agent_tls_listen != fresh.agent_tls_listen) {
    changed.emplace_back("agent_tls_listen");
  }
  if (running.agent_plain_listen != fresh.agent_plain_listen) {
    changed.emplace_back("agent_plain_listen");
  }
  if (running.frontend_listen != fresh.frontend_listen) {
    changed.emplace_back("frontend_listen");
  }
  if (running.admin_listen != fresh.admin_listen) {
    changed.emplace_back("admin_listen");
  }
  if (running.shards != fresh.shards) {
    changed.emplace_back("shards");
  }
  return changed;
}

}  // namespace camtunnel::gateway
