// Who a simulated agent is: its canonical id, key reference and derived key K (PROTOCOL.md
// section 2), and in managed mode the gateway its manager assigned. Data connections read what
// they need from it.
#pragma once

#include <cstdint>
#include <string>

#include "agentsim/url_endpoint.h"
#include "proto/crypto.h"
#include "proto/identifiers.h"

namespace camtunnel::agentsim {

struct AgentIdentity {
  uint32_t index = 0;  // --agent_index_base + 0..N-1: picks the source address, names it
  std::string id;
  proto::KeyRef key_ref;
  proto::Digest key{};
  uint32_t tag = 0;  // AgentTag(id), carried in every RTP packet of its camera
  // Managed mode: the gateway of ASSIGN (or SWITCH) that key and key_ref are for. Null: the
  // gateway of --gateway_agent.
  const UrlEndpoint* gateway = nullptr;
};

}  // namespace camtunnel::agentsim
