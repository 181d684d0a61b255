// The rows of the manager's state, as every storage backend reads and writes them
// (store_connection.h): agents, claims, activation attempts and the audit trail, and the queries
// over them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/manager_link.h"

namespace camtunnel::manager {

enum class AgentState { kActive, kDeactivated };
std::string_view AgentStateName(AgentState s);
std::optional<AgentState> ParseAgentState(std::string_view name);

struct AgentRecord {
  std::string agent_id;
  proto::AgentSecret secret{};
  AgentState state = AgentState::kActive;
  std::string operator_id;
  int64_t activated_at_ms = 0;
  int64_t last_seen_ms = 0;  // last frame on the manager link; 0 never
  std::string last_status;   // last STATUS text
  std::string streamer_url;  // first entry of the last ASSIGN
  std::string located_url;   // the Streamer its last "state=connected" STATUS named
};

// An operator's claim on a serial (from the device label): activation with this token binds the
// camera to `operator_id`. The token itself is never stored: SHA-256(salt | token).
struct ClaimRecord {
  std::string serial;
  std::string operator_id;
  std::array<uint8_t, 16> token_salt{};
  std::array<uint8_t, 32> token_hash{};
  int64_t created_at_ms = 0;
};

struct AuditEntry {
  int64_t at_ms = 0;
  std::string actor;  // "activation", "admin", "link"
  std::string action;
  std::string subject;  // agent id or serial
  std::string detail;
  int64_t id = 0;  // assigned by the store; ignored on write
};

struct ActivationEntry {
  int64_t id = 0;  // assigned by the store; ignored on write
  std::string serial;
  std::string source;
  std::string result;
  int64_t at_ms = 0;
};

// A page of agents in agent id order. Filters combine (AND); an empty string or nullopt does not
// filter. `after` is the cursor: the last agent id of the previous page.
struct AgentQuery {
  std::string after;
  size_t limit = 100;
  std::optional<AgentState> state;
  std::string streamer_url;  // assigned to (first entry of its last ASSIGN)
  std::string operator_id;
  int64_t seen_since_ms = 0;   // > 0: last seen at or after (online by heartbeat)
  int64_t seen_before_ms = 0;  // > 0: last seen before, or never (offline)
};

struct AgentPage {
  std::vector<AgentRecord> agents;
  std::string next;  // cursor for the next page; empty when this was the last
};

// Last-seen times and statuses kept in memory and written in batches (one transaction, not one
// synced write per heartbeat). An empty status leaves the stored one.
struct SeenUpdate {
  std::string agent_id;
  int64_t last_seen_ms = 0;
  std::string status;
};

}  // namespace camtunnel::manager
