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

// An operator's command to one agent, as a row (PROTOCOL.md 10.6): whichever manager holds the
// agent's link delivers it with the row's id, and the agent's ACK (or the deadline) ends it.
enum class CommandState { kQueued, kSent, kAcked, kFailed, kExpired };
std::string_view CommandStateName(CommandState s);
std::optional<CommandState> ParseCommandState(std::string_view name);
inline bool IsFinal(CommandState s) {
  return s == CommandState::kAcked || s == CommandState::kFailed || s == CommandState::kExpired;
}

struct CommandRecord {
  int64_t id = 0;  // assigned by the store, increasing; ignored on enqueue
  std::string agent_id;
  std::string kind;          // "switch", "deactivate", "restart"
  std::string argument;      // switch: the Streamer URL
  std::string requested_by;  // "admin", ...
  int64_t created_at_ms = 0;
  int64_t deadline_ms = 0;  // not acknowledged by then: expired
  CommandState state = CommandState::kQueued;
  std::string manager_id;  // the manager that sent it last
  int64_t epoch = 0;       // of that manager's link when it sent it
  std::string outcome;     // the agent's ACK text, or why it failed or expired
  int64_t updated_at_ms = 0;
};

// Which manager holds an agent's link: the newest claim wins and bumps the epoch, so a manager
// whose link was taken over (it was stopped, partitioned, or the agent moved) holds a stale epoch
// and cannot act for the agent any more.
struct LinkClaim {
  std::string manager_id;
  int64_t epoch = 0;
};

// A named lease (leader_lease.h): who holds it, under which fencing term, and whether the asker
// holds it now. The term rises each time the lease changes hands, never on a renewal.
struct Lease {
  std::string holder;
  int64_t term = 0;
  bool held = false;          // by the manager that asked
  int64_t expires_in_ms = 0;  // by the database's clock, from the moment it answered
};

}  // namespace camtunnel::manager
