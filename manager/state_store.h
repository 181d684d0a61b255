// The manager's durable state in one SQLite file: agents (identity, secret, lifecycle state, last
// status), activation attempts, current assignments, and an audit trail of every decision an
// operator or the activation server made. Schema changes are numbered migrations applied in
// order at open (PRAGMA user_version), each in its own transaction, so a manager restarted on an
// older file upgrades it and a crash mid-upgrade leaves the previous version intact.
//
// Single-threaded: the manager's one loop thread owns the connection.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/manager_link.h"

struct sqlite3;

namespace camtunnel::manager {

enum class AgentState { kActive, kDeactivated };
std::string_view AgentStateName(AgentState s);

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
};

class StateStore {
 public:
  // Opens (creating) the database and applies pending migrations. ":memory:" for tests.
  static absl::StatusOr<StateStore> Open(const std::string& path);
  StateStore(StateStore&& other) noexcept;
  StateStore& operator=(StateStore&& other) noexcept;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  ~StateStore();

  static constexpr int kSchemaVersion = 2;
  int schema_version() const;

  absl::StatusOr<std::optional<AgentRecord>> FindAgent(std::string_view agent_id) const;
  // Inserts or replaces the agent (a fresh activation, or one after deactivation).
  absl::Status PutAgent(const AgentRecord& agent);
  absl::Status SetState(std::string_view agent_id, AgentState state);
  absl::Status RecordStatus(std::string_view agent_id, std::string_view status, int64_t now_ms);
  absl::Status RecordAssignment(std::string_view agent_id, std::string_view streamer_url,
                                int64_t now_ms);
  // Where the agent says it is connected now (written when it changes, not per STATUS).
  absl::Status RecordLocation(std::string_view agent_id, std::string_view streamer_url);
  absl::StatusOr<std::vector<AgentRecord>> ListAgents(size_t limit) const;
  // Active agents assigned to each Streamer URL (the manager's view of load).
  absl::StatusOr<size_t> CountAssigned(std::string_view streamer_url) const;

  // Inserts or replaces the claim on its serial.
  absl::Status PutClaim(const ClaimRecord& claim);
  absl::StatusOr<std::optional<ClaimRecord>> FindClaim(std::string_view serial) const;
  absl::StatusOr<bool> DeleteClaim(std::string_view serial);  // false: there was none
  absl::StatusOr<std::vector<ClaimRecord>> ListClaims(size_t limit) const;

  absl::Status RecordActivation(std::string_view serial, std::string_view source,
                                std::string_view result, int64_t now_ms);
  absl::Status Audit(const AuditEntry& entry);
  absl::StatusOr<std::vector<AuditEntry>> RecentAudit(size_t limit) const;

  // For a write its caller goes on without (an audit entry, an activation attempt's record, a
  // last-seen status): a failure is never dropped silently. It is logged (event
  // store_write_failed with `op` and the status, rate-limited like every event) and counted by
  // `op`, a short fixed name ("audit"), exported as camtunnel_manager_store_write_errors_total.
  void CheckWrite(std::string_view op, const absl::Status& status);
  // Failed writes by operation since the store was opened.
  const std::map<std::string, uint64_t, std::less<>>& write_errors() const { return write_errors_; }

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  absl::Status Migrate();
  absl::Status Exec(const char* sql);

  sqlite3* db_ = nullptr;
  std::map<std::string, uint64_t, std::less<>> write_errors_;
};

}  // namespace camtunnel::manager
