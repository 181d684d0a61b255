// What an agent proves itself with, shared by the control session and its data connections.
#pragma once

#include <string>
#include <vector>

#include "proto/crypto.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

struct AgentIdentity {
  std::string agent_id;  // canonical (checked by the configuration)
  proto::KeyRef key_ref;
  proto::Digest agent_key{};  // K; never logged
  std::vector<proto::ServiceEntry> services;
};

}  // namespace camtunnel::agent
