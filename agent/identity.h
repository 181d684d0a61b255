// What an agent proves itself with, shared by the control session and its data connections.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/crypto.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

// The version text of HELLO, on both of the agent's links.
inline constexpr std::string_view kAgentVersion = "camtunnel-agent/0.1.0";

struct AgentIdentity {
  std::string agent_id;  // canonical (checked by the configuration)
  proto::KeyRef key_ref;
  proto::Digest agent_key{};  // K; never logged
  std::vector<proto::ServiceEntry> services;
};

}  // namespace camtunnel::agent
