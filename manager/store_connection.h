// One connection to the manager's durable state, behind which sit two backends:
//  - SQLite (sqlite_connection.h): the embedded default, one file, one manager;
//  - PostgreSQL (postgres_connection.h): how several managers share state.
// The calls block: they run on the store's worker threads (store.h), never on the manager's
// ring. The same test suite runs against both backends (tests/manager/store_suite_test.cc).
//
// Both apply their numbered migrations at open, each in its own transaction, so a manager
// restarted on an older database upgrades it and a crash mid-upgrade leaves the previous version.
// A database newer than the code is refused.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "manager/store_records.h"

namespace camtunnel::manager {

class SecretSealer;

class StoreConnection {
 public:
  virtual ~StoreConnection() = default;

  // "sqlite" or "postgresql"; and the schema version the database is at.
  virtual std::string_view backend() const = 0;
  virtual int schema_version() = 0;
  // A round trip to the database (reconnecting if the connection was lost): UNAVAILABLE when it
  // cannot be reached. Every call that cannot reach the database returns UNAVAILABLE too.
  virtual absl::Status Ping() = 0;

  // Runs `body` in one transaction: committed when it returns OK, rolled back otherwise.
  // A conflict with a concurrent writer (another manager) is retried a few times before its
  // error is returned, so `body` must be safe to run again.
  virtual absl::Status Transaction(const std::function<absl::Status()>& body) = 0;

  // Reading an agent whose stored secret does not open (see OpenFromStore) is DATA_LOSS naming
  // it, for FindAgent and ListAgents alike.
  virtual absl::StatusOr<std::optional<AgentRecord>> FindAgent(std::string_view agent_id) = 0;
  // Inserts or replaces the agent (a fresh activation, or one after deactivation). The
  // assignment and location of a replaced agent are kept.
  virtual absl::Status PutAgent(const AgentRecord& agent) = 0;
  virtual absl::Status SetState(std::string_view agent_id, AgentState state) = 0;
  virtual absl::Status RecordStatus(std::string_view agent_id, std::string_view status,
                                    int64_t now_ms) = 0;
  // Many agents' last-seen times (and statuses) in one transaction.
  virtual absl::Status RecordSeen(const std::vector<SeenUpdate>& updates) = 0;
  virtual absl::Status RecordAssignment(std::string_view agent_id, std::string_view streamer_url,
                                        int64_t now_ms) = 0;
  // Where the agent says it is connected now (written when it changes, not per STATUS).
  virtual absl::Status RecordLocation(std::string_view agent_id, std::string_view streamer_url) = 0;
  virtual absl::StatusOr<AgentPage> ListAgents(const AgentQuery& query) = 0;
  // How many agents match the query's filters (its cursor and limit are ignored).
  virtual absl::StatusOr<uint64_t> CountAgents(const AgentQuery& query) = 0;
  // Active agents assigned to each Streamer URL: the manager's load counters are reconciled
  // from this, never counted per ASSIGN.
  virtual absl::StatusOr<std::map<std::string, uint64_t>> CountAssignedByStreamer() = 0;
  // Every deactivated agent's id (the Streamers' denylists).
  virtual absl::StatusOr<std::vector<std::string>> ListDeactivated() = 0;

  // Inserts or replaces the claim on its serial.
  virtual absl::Status PutClaim(const ClaimRecord& claim) = 0;
  virtual absl::StatusOr<std::optional<ClaimRecord>> FindClaim(std::string_view serial) = 0;
  virtual absl::StatusOr<bool> DeleteClaim(std::string_view serial) = 0;  // false: none
  virtual absl::StatusOr<std::vector<ClaimRecord>> ListClaims(std::string_view after,
                                                              size_t limit) = 0;

  // The link registry: `manager_id` now holds the agent's link; returns the new epoch (one
  // above the agent's previous claim, whoever made it).
  virtual absl::StatusOr<int64_t> ClaimLink(std::string_view agent_id, std::string_view manager_id,
                                            int64_t now_ms) = 0;
  // The link ended: its claim is dropped, unless a newer one replaced it.
  virtual absl::Status ReleaseLink(std::string_view agent_id, std::string_view manager_id,
                                   int64_t epoch) = 0;
  virtual absl::StatusOr<std::optional<LinkClaim>> FindLink(std::string_view agent_id) = 0;

  // Commands (PROTOCOL.md 10.6). Ids increase and are never reused: the agent ignores an id
  // that is not above the last one it acted on.
  virtual absl::StatusOr<int64_t> EnqueueCommand(const CommandRecord& command) = 0;
  virtual absl::StatusOr<std::optional<CommandRecord>> FindCommand(int64_t id) = 0;
  // In one transaction: if command `id` is still queued or sent and before its deadline, and the
  // agent's link is held by `manager_id` at `epoch`, marks it sent by that manager and epoch and
  // returns it; otherwise nullopt (another manager holds the link, or it is over).
  virtual absl::StatusOr<std::optional<CommandRecord>> TakeCommand(int64_t id,
                                                                   std::string_view manager_id,
                                                                   int64_t epoch,
                                                                   int64_t now_ms) = 0;
  // Queued or sent commands before their deadline, oldest first: of one agent (empty
  // `agent_id`: of every agent whose link `manager_id` holds).
  virtual absl::StatusOr<std::vector<CommandRecord>> PendingCommands(std::string_view agent_id,
                                                                     std::string_view manager_id,
                                                                     int64_t now_ms) = 0;
  // Ends a command that is not over yet (acked, failed); false if it already was.
  virtual absl::StatusOr<bool> FinishCommand(int64_t id, CommandState state,
                                             std::string_view outcome, int64_t now_ms) = 0;
  // The highest command id ever issued (0: none), and a floor for the ids to come: agents keep
  // the highest id they acted on and treat anything not above it as done, so a database that
  // receives a fleet (migrate) must never issue an id at or below one the source issued.
  virtual absl::StatusOr<int64_t> LastCommandId() = 0;
  virtual absl::Status KeepCommandIdsAbove(int64_t id) = 0;
  // Every queued or sent command past its deadline becomes expired; returns how many.
  virtual absl::StatusOr<uint64_t> ExpireCommands(int64_t now_ms) = 0;

  // Leadership for work done once per deployment (leader_lease.h), on the database's clock so
  // that managers on different hosts agree: in one transaction, `holder` gets lease `name` if
  // nobody holds it, renews it if it holds it, or takes it with the next term if its holder let
  // it expire; the answer says who holds it.
  virtual absl::StatusOr<Lease> AcquireLease(std::string_view name, std::string_view holder,
                                             int64_t ttl_ms) = 0;
  // The fence of a leader's action: FAILED_PRECONDITION unless `holder` holds lease `name` at
  // `term` and it has not expired. Inside Transaction() it also keeps the lease from changing
  // hands until the commit, so the action and the check are one.
  virtual absl::Status CheckLease(std::string_view name, std::string_view holder, int64_t term) = 0;
  // Streamer health as the leader judged it (only the leader probes; every manager reads it).
  virtual absl::Status SetStreamerHealth(std::string_view url, bool healthy, int64_t now_ms) = 0;
  virtual absl::StatusOr<std::map<std::string, bool>> ListStreamerHealth() = 0;

  // Retention: deletes at most `limit` rows of each history table older than `before_ms`
  // (activation attempts, audit entries, commands that are over); returns how many went.
  virtual absl::StatusOr<uint64_t> PruneHistory(int64_t before_ms, size_t limit) = 0;

  virtual absl::Status RecordActivation(const ActivationEntry& entry) = 0;
  // Oldest first, ids above `after_id`.
  virtual absl::StatusOr<std::vector<ActivationEntry>> ListActivations(int64_t after_id,
                                                                       size_t limit) = 0;
  virtual absl::Status Audit(const AuditEntry& entry) = 0;
  // Newest first.
  virtual absl::StatusOr<std::vector<AuditEntry>> RecentAudit(size_t limit) = 0;
  // Oldest first, ids above `after_id` (export, migration).
  virtual absl::StatusOr<std::vector<AuditEntry>> ListAudit(int64_t after_id, size_t limit) = 0;
};

// Opens a backend by its spec, applying pending migrations:
//  - "sqlite:PATH", or a bare PATH (":memory:" for tests): SQLite;
//  - "postgresql://..." or "postgres://..." URIs, or "host=... dbname=..." key=value strings:
//    PostgreSQL through libpq (several hosts with target_session_attrs=read-write follow a
//    promoted standby).
// Every backend seals agents' secrets with `sealer` when it writes them and opens them when it
// reads them (SealForStore and OpenFromStore in secret_sealer.h); null stores them clear (tests,
// a manager started without --secrets_key_file). The sealer must outlive the connection.
absl::StatusOr<std::unique_ptr<StoreConnection>> OpenStoreConnection(const std::string& spec,
                                                                     const SecretSealer* sealer);

// True when `spec` names a PostgreSQL database.
bool IsPostgresSpec(std::string_view spec);

}  // namespace camtunnel::manager
