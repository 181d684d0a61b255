// The embedded storage backend: one SQLite file (WAL, synchronous=FULL), for a single manager,
// `make demo` and most tests. Schema version in PRAGMA user_version.
#pragma once

#include <memory>
#include <string>

#include "manager/secret_sealer.h"
#include "manager/store_connection.h"

struct sqlite3;

namespace camtunnel::manager {

class SqliteConnection final : public StoreConnection {
 public:
  // Opens (creating) the file and applies pending migrations. ":memory:" for tests. Agents'
  // secrets are sealed with `sealer` (secret_sealer.h; null: stored clear), which must outlive
  // the connection.
  static absl::StatusOr<std::unique_ptr<SqliteConnection>> Open(
      const std::string& path, const SecretSealer* sealer = nullptr);
  ~SqliteConnection() override;
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  static constexpr int kSchemaVersion = 4;

  std::string_view backend() const override { return "sqlite"; }
  int schema_version() override;
  absl::Status Ping() override { return absl::OkStatus(); }
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
  SqliteConnection(sqlite3* db, const SecretSealer* sealer) : db_(db), sealer_(sealer) {}
  absl::Status Migrate();
  absl::Status Exec(const char* sql);

  sqlite3* db_ = nullptr;
  const SecretSealer* sealer_ = nullptr;
  int transaction_depth_ = 0;
};

}  // namespace camtunnel::manager
