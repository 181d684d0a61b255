// The activation exchange of PROTOCOL.md section 10.1 as bytes: the JSON request an agent
// POSTs and a strict reader for the server's answer. The reader accepts only what the manager
// sends (one flat JSON object whose values are strings without escapes, at most 4 KiB), so the
// agent needs no JSON library, and anything else is an error rather than a guess.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/crypto.h"
#include "proto/manager_link.h"

namespace camtunnel::proto {

inline constexpr std::string_view kActivatePath = "/api/v1/activate";
inline constexpr size_t kMaxActivationResponseBody = 4096;

// `agent_proof` non-null: a reactivation (ReactivationProof of the existing secret).
std::string BuildActivationBody(std::string_view serial, const Digest& factory_secret,
                                std::string_view operator_id, const Digest* agent_proof);

struct ActivationResult {
  std::string agent_id;
  std::string manager_url;  // empty when unusable: see manager_url_problem
  std::string manager_url_problem;
  // Every manager of the deployment (section 10.5), those of manager_url's scheme; empty when
  // the answer names only manager_url.
  std::vector<std::string> manager_urls;
  std::optional<AgentSecret> agent_secret;  // first activation only
};
inline constexpr size_t kMaxActivationManagers = 16;
// nullopt and `*error` unless `body` is a flat object with a canonical agent_id and, if present,
// a 64-hex agent_secret. Unknown string members are skipped. A manager_url that is missing or
// not https:// or http://host[:port] (TLS or plain manager link, PROTOCOL.md section 10.2)
// leaves manager_url empty and says why in manager_url_problem: the answer still carries the
// secret, which the agent must keep (it is never issued again) before it gives up on the rest.
std::optional<ActivationResult> ParseActivationResult(std::string_view body, std::string* error);

}  // namespace camtunnel::proto
