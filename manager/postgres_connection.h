// The manager's state in PostgreSQL, through libpq: how several managers share one database.
// One object is one database session; it is not thread-safe (the store gives each worker thread
// its own connection).
//
// Connection loss is noticed in seconds, not after the kernel's two-hour TCP defaults: unless the
// operator's conninfo sets them, keepalives (idle 5 s, every 2 s, 3 probes), tcp_user_timeout
// 10 s and connect_timeout 5 s are added (postgres_conninfo.h). A statement that finds the session
// broken resets it once and, outside a transaction, runs once more; when that fails too the call
// returns absl::UnavailableError (callers answer 503). Several hosts with
// target_session_attrs=read-write follow a promoted standby: the reset connects to whichever host
// accepts writes now, and a statement refused by a standby that was demoted (SQLSTATE 25006)
// counts as a broken session.
//
// Deployment notes:
//  - the manager needs a session of its own: LISTEN/NOTIFY and advisory locks belong to the
//    session, so a transaction-pooling proxy (pgbouncer pool_mode=transaction) will not do;
//    session pooling or a direct connection will;
//  - a database on another host: sslmode=verify-full (with sslrootcert), since the secrets of
//    every camera travel over this connection.
//
// Text PostgreSQL cannot hold (invalid UTF-8, NUL), which SQLite would store as given, is stored
// with U+FFFD for each offending byte rather than failing the statement.
//
// TODO: no statement_timeout or lock_timeout yet: a statement waiting for a row lock another
// manager holds waits as long as it is held. That stalls one store worker, never the ring;
// acceptable while transactions are short, to be bounded once leases make long holders possible.
//
// Schema: numbered migrations (postgres_connection.cc) tracked in table schema_version, each in
// its own transaction under a transaction-scoped advisory lock, so managers starting together
// apply each migration exactly once. The numbering is this backend's own (it is not SQLite's
// user_version). Agent ids and serials sort bytewise (COLLATE "C"), as in SQLite, whatever the
// database's locale, so keyset paging gives the same pages on both backends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "manager/secret_sealer.h"
#include "manager/store_connection.h"
#include "manager/store_records.h"

struct pg_conn;
struct pg_result;

namespace camtunnel::manager {

class PgParams;
class PgResult;

class PostgresConnection final : public StoreConnection {
 public:
  static constexpr int kSchemaVersion = 3;
  // EnqueueCommand notifies this channel with the new row's id (decimal text), in the insert's
  // transaction: how the manager holding the agent's link hears of it at once
  // (command_listener.h).
  static constexpr const char* kCommandChannel = "camtunnel_commands";

  // `conninfo`: a postgresql:// URI or a key=value string, as libpq takes them. Agents' secrets
  // are sealed with `sealer` (secret_sealer.h; null: stored clear), which must outlive the
  // connection.
  static absl::StatusOr<std::unique_ptr<PostgresConnection>> Open(
      const std::string& conninfo, const SecretSealer* sealer = nullptr);

  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;
  ~PostgresConnection() override;

  std::string_view backend() const override { return "postgresql"; }
  int schema_version() override;
  absl::Status Ping() override;

  absl::Status Transaction(const std::function<absl::Status()>& body) override;

  absl::StatusOr<std::optional<AgentRecord>> FindAgent(std::string_view agent_id) override;
  absl::Status PutAgent(const AgentRecord& agent) override;
  absl::Status SetState(std::string_view agent_id, AgentState state) override;
  absl::Status RecordStatus(std::string_view agent_id, std::string_view status,
                            int64_t now_ms) override;
  absl::Status RecordSeen(const std::vector<SeenUpdate>& updates) override;
  absl::Status RecordAssignment(std::string_view agent_id, std::string_view streamer_url,
                                int64_t now_ms) override;
  absl::Status RecordLocation(std::string_view agent_id, std::string_view streamer_url) override;
  absl::StatusOr<AgentPage> ListAgents(const AgentQuery& query) override;
  absl::StatusOr<uint64_t> CountAgents(const AgentQuery& query) override;
  absl::StatusOr<std::map<std::string, uint64_t>> CountAssignedByStreamer() override;
  absl::StatusOr<std::vector<std::string>> ListDeactivated() override;

  absl::Status PutClaim(const ClaimRecord& claim) override;
  absl::StatusOr<std::optional<ClaimRecord>> FindClaim(std::string_view serial) override;
  absl::StatusOr<bool> DeleteClaim(std::string_view serial) override;
  absl::StatusOr<std::vector<ClaimRecord>> ListClaims(std::string_view after,
                                                      size_t limit) override;

  absl::StatusOr<int64_t> ClaimLink(std::string_view agent_id, std::string_view manager_id,
                                    int64_t now_ms) override;
  absl::Status ReleaseLink(std::string_view agent_id, std::string_view manager_id,
                           int64_t epoch) override;
  absl::StatusOr<std::optional<LinkClaim>> FindLink(std::string_view agent_id) override;
  absl::StatusOr<int64_t> EnqueueCommand(const CommandRecord& command) override;
  absl::StatusOr<std::optional<CommandRecord>> FindCommand(int64_t id) override;
  absl::StatusOr<std::optional<CommandRecord>> TakeCommand(int64_t id, std::string_view manager_id,
                                                           int64_t epoch, int64_t now_ms) override;
  absl::StatusOr<std::vector<CommandRecord>> PendingCommands(std::string_view agent_id,
                                                             std::string_view manager_id,
                                                             int64_t now_ms) override;
  absl::StatusOr<bool> FinishCommand(int64_t id, CommandState state, std::string_view outcome,
                                     int64_t now_ms) override;
  absl::StatusOr<uint64_t> ExpireCommands(int64_t now_ms) override;
  absl::StatusOr<Lease> AcquireLease(std::string_view name, std::string_view holder,
                                     int64_t ttl_ms) override;
  absl::Status CheckLease(std::string_view name, std::string_view holder, int64_t term) override;
  absl::Status SetStreamerHealth(std::string_view url, bool healthy, int64_t now_ms) override;
  absl::StatusOr<std::map<std::string, bool>> ListStreamerHealth() override;
  absl::StatusOr<uint64_t> PruneHistory(int64_t before_ms, size_t limit) override;
  absl::StatusOr<int64_t> LastCommandId() override;
  absl::Status KeepCommandIdsAbove(int64_t id) override;

  absl::Status RecordActivation(const ActivationEntry& entry) override;
  absl::StatusOr<std::vector<ActivationEntry>> ListActivations(int64_t after_id,
                                                               size_t limit) override;
  absl::Status Audit(const AuditEntry& entry) override;
  absl::StatusOr<std::vector<AuditEntry>> RecentAudit(size_t limit) override;
  absl::StatusOr<std::vector<AuditEntry>> ListAudit(int64_t after_id, size_t limit) override;

 private:
  PostgresConnection(pg_conn* conn, const SecretSealer* sealer) : conn_(conn), sealer_(sealer) {}

  // Runs one statement. `sql` is constant text; every value travels in `params`.
  absl::StatusOr<PgResult> Exec(std::string_view what, const std::string& sql,
                                const PgParams& params);
  // A constant script without parameters, possibly several statements (migrations, BEGIN).
  absl::Status ExecScript(std::string_view what, const std::string& sql);
  // Sends with `send` and judges the result: a broken session is reset, and the statement sent
  // once more outside a transaction.
  absl::StatusOr<PgResult> Run(std::string_view what, absl::FunctionRef<pg_result*()> send);
  absl::Status Migrate();
  absl::Status MigrateOne(int version, const char* sql);

  pg_conn* conn_;
  const SecretSealer* sealer_;
  bool in_transaction_ = false;
  // Set when a statement of the open transaction failed with a serialization failure or a
  // deadlock: the transaction is run again.
  bool transaction_conflict_ = false;
};

}  // namespace camtunnel::manager
