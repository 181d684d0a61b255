// See state_store.h.
#include "manager/state_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/log.h"

namespace camtunnel::manager {
namespace {

// Append-only: a released migration is never edited, a change is a new entry.
constexpr const char* kMigrations[] = {
    // 1: initial schema.
    R"sql(
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY,
  secret BLOB NOT NULL,
  state TEXT NOT NULL,
  operator_id TEXT NOT NULL DEFAULT '',
  activated_at_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL DEFAULT 0,
  last_status TEXT NOT NULL DEFAULT ''
);
CREATE TABLE assignments (
  agent_id TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
  streamer_url TEXT NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE INDEX assignments_by_streamer ON assignments(streamer_url);
CREATE TABLE activations (
  id INTEGER PRIMARY KEY,
  serial TEXT NOT NULL,
  source TEXT NOT NULL,
  result TEXT NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL
);
)sql",
    // 2: where each agent last said it was connected (the Streamer that holds it: lookups and
    // redirects), and per-serial claim tokens registered by operators (salted SHA-256 only).
    R"sql(
ALTER TABLE agents ADD COLUMN located_streamer TEXT NOT NULL DEFAULT '';
CREATE TABLE claims (
  serial TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL,
  token_salt BLOB NOT NULL,
  token_hash BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL
);
)sql",
};

// A prepared statement that finalizes itself; binding helpers keep the call sites short.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Text(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Blob(int i, std::span<const uint8_t> v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  int Step() { return sqlite3_step(stmt_); }
  std::string ColText(int i) const {
    const unsigned char* t = sqlite3_column_text(stmt_, i);
    return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
  }
  int64_t ColInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  std::span<const uint8_t> ColBlob(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    return {static_cast<const uint8_t*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, i))};
  }
  absl::Status Error(std::string_view what) const {
    return absl::InternalError(absl::StrCat(std::string(what), ": ", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status RunToDone(Stmt& s, std::string_view what) {
  if (!s.ok() || s.Step() != SQLITE_DONE) {
    return s.Error(what);
  }
  return absl::OkStatus();
}

constexpr const char* kAgentColumns =
    "SELECT a.agent_id, a.secret, a.state, a.operator_id, a.activated_at_ms, a.last_seen_ms, "
    "a.last_status, COALESCE(s.streamer_url, ''), a.located_streamer FROM agents a "
    "LEFT JOIN assignments s "
    "ON s.agent_id = a.agent_id";

AgentRecord ReadAgent(const Stmt& s) {
  AgentRecord r;
  r.agent_id = s.ColText(0);
  auto secret = s.ColBlob(1);
  std::copy_n(secret.begin(), std::min(secret.size(), r.secret.size()), r.secret.begin());
  r.state = s.ColText(2) == "deactivated" ? AgentState::kDeactivated : AgentState::kActive;
  r.operator_id = s.ColText(3);
  r.activated_at_ms = s.ColInt(4);
  r.last_seen_ms = s.ColInt(5);
  r.last_status = s.ColText(6);
  r.streamer_url = s.ColText(7);
  r.located_url = s.ColText(8);
  return r;
}

}  // namespace

std::string_view AgentStateName(AgentState s) {
  return s == AgentState::kActive ? "active" : "deactivated";
}

absl::StatusOr<StateStore> StateStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open state database ", path, ": ", msg));
  }
  StateStore store(db);
  // WAL + synchronous=FULL: an activation answered 200 is on disk (a secret issued and then
  // lost would lock the camera out), and readers never block the writer.
  if (absl::Status st = store.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                   "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=2000;");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = store.Migrate(); !st.ok()) {
    return st;
  }
  return store;
}

StateStore::StateStore(StateStore&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), write_errors_(std::move(other.write_errors_)) {}

StateStore& StateStore::operator=(StateStore&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = std::exchange(other.db_, nullptr);
    write_errors_ = std::move(other.write_errors_);
  }
  return *this;
}

StateStore::~StateStore() { sqlite3_close(db_); }

void StateStore::CheckWrite(std::string_view op, const absl::Status& status) {
  if (status.ok()) {
    return;
  }
  auto it = write_errors_.find(op);
  if (it == write_errors_.end()) {
    it = write_errors_.emplace(std::string(op), 0).first;
  }
  ++it->second;
  runtime::LogEvent(runtime::LogLevel::kError, "store_write_failed",
                    {runtime::Kv("op", op), runtime::Kv("status", status.ToString())});
}

absl::Status StateStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

int StateStore::schema_version() const {
  Stmt s(db_, "PRAGMA user_version");
  return s.ok() && s.Step() == SQLITE_ROW ? static_cast<int>(s.ColInt(0)) : -1;
}

absl::Status StateStore::Migrate() {
  constexpr int kCount = static_cast<int>(std::size(kMigrations));
  static_assert(kCount == kSchemaVersion);
  const int current = schema_version();
  if (current < 0) {
    return absl::InternalError("cannot read the schema version");
  }
  if (current > kCount) {
    // A newer manager wrote this file; running old code on it could corrupt it.
    return absl::FailedPreconditionError(
        absl::StrCat("state database schema ", current, " is newer than this manager's ", kCount));
  }
  for (int v = current; v < kCount; ++v) {
    std::string sql = absl::StrCat("BEGIN IMMEDIATE;", kMigrations[v],
                                   "PRAGMA user_version = ", v + 1, "; COMMIT;");
    if (absl::Status st = Exec(sql.c_str()); !st.ok()) {
      CheckWrite("rollback", Exec("ROLLBACK;"));
      return absl::InternalError(absl::StrCat("migration ", v + 1, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AgentRecord>> StateStore::FindAgent(std::string_view id) const {
  std::string sql = absl::StrCat(kAgentColumns, " WHERE a.agent_id = ?1");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) {
    return s.Error("find agent");
  }
  s.Text(1, id);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) {
    return std::optional<AgentRecord>(ReadAgent(s));
  }
  if (rc == SQLITE_DONE) {
    return std::optional<AgentRecord>();
  }
  return s.Error("find agent");
}

absl::Status StateStore::PutAgent(const AgentRecord& a) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO agents (agent_id, secret, state, operator_id, activated_at_ms, "
         "last_seen_ms, last_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.Text(1, a.agent_id)
      .Blob(2, a.secret)
      .Text(3, AgentStateName(a.state))
      .Text(4, a.operator_id)
      .Int(5, a.activated_at_ms)
      .Int(6, a.last_seen_ms)
      .Text(7, a.last_status);
  return RunToDone(s, "put agent");
}

absl::Status StateStore::SetState(std::string_view id, AgentState state) {
  Stmt s(db_, "UPDATE agents SET state = ?2 WHERE agent_id = ?1");
  s.Text(1, id).Text(2, AgentStateName(state));
  if (absl::Status st = RunToDone(s, "set state"); !st.ok()) {
    return st;
  }
  if (state == AgentState::kDeactivated) {
    Stmt d(db_, "DELETE FROM assignments WHERE agent_id = ?1");
    d.Text(1, id);
    return RunToDone(d, "drop assignment");
  }
  return absl::OkStatus();
}

absl::Status StateStore::RecordStatus(std::string_view id, std::string_view status,
                                      int64_t now_ms) {
  Stmt s(db_, "UPDATE agents SET last_status = ?2, last_seen_ms = ?3 WHERE agent_id = ?1");
  s.Text(1, id).Text(2, status).Int(3, now_ms);
  return RunToDone(s, "record status");
}

absl::Status StateStore::RecordAssignment(std::string_view id, std::string_view url,
                                          int64_t now_ms) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO assignments (agent_id, streamer_url, at_ms) "
         "VALUES (?1, ?2, ?3)");
  s.Text(1, id).Text(2, url).Int(3, now_ms);
  return RunToDone(s, "record assignment");
}

absl::Status StateStore::RecordLocation(std::string_view id, std::string_view url) {
  Stmt s(db_, "UPDATE agents SET located_streamer = ?2 WHERE agent_id = ?1");
  s.Text(1, id).Text(2, url);
  return RunToDone(s, "record location");
}

absl::Status StateStore::PutClaim(const ClaimRecord& c) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO claims (serial, operator_id, token_salt, token_hash, "
         "created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
  s.Text(1, c.serial)
      .Text(2, c.operator_id)
      .Blob(3, c.token_salt)
      .Blob(4, c.token_hash)
      .Int(5, c.created_at_ms);
  return RunToDone(s, "put claim");
}

absl::StatusOr<bool> StateStore::DeleteClaim(std::string_view serial) {
  Stmt s(db_, "DELETE FROM claims WHERE serial = ?1");
  s.Text(1, serial);
  if (absl::Status st = RunToDone(s, "delete claim"); !st.ok()) {
    return st;
  }
  return sqlite3_changes(db_) > 0;
}

namespace {

ClaimRecord ReadClaim(const Stmt& s) {
  ClaimRecord c;
  c.serial = s.ColText(0);
  c.operator_id = s.ColText(1);
  auto salt = s.ColBlob(2);
  std::copy_n(salt.begin(), std::min(salt.size(), c.token_salt.size()), c.token_salt.begin());
  auto hash = s.ColBlob(3);
  std::copy_n(hash.begin(), std::min(hash.size(), c.token_hash.size()), c.token_hash.begin());
  c.created_at_ms = s.ColInt(4);
  return c;
}

constexpr const char* kClaimColumns =
    "SELECT serial, operator_id, token_salt, token_hash, created_at_ms FROM claims";

}  // namespace

absl::StatusOr<std::optional<ClaimRecord>> StateStore::FindClaim(std::string_view serial) const {
  std::string sql = absl::StrCat(kClaimColumns, " WHERE serial = ?1");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) {
    return s.Error("find claim");
  }
  s.Text(1, serial);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) {
    return std::optional<ClaimRecord>(ReadClaim(s));
  }
  if (rc == SQLITE_DONE) {
    return std::optional<ClaimRecord>();
  }
  return s.Error("find claim");
}

absl::StatusOr<std::vector<ClaimRecord>> StateStore::ListClaims(size_t limit) const {
  std::string sql = absl::StrCat(kClaimColumns, " ORDER BY serial LIMIT ?1");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) {
    return s.Error("list claims");
  }
  s.Int(1, static_cast<int64_t>(limit));
  std::vector<ClaimRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(ReadClaim(s));
  }
  if (rc != SQLITE_DONE) {
    return s.Error("list claims");
  }
  return out;
}

absl::StatusOr<std::vector<AgentRecord>> StateStore::ListAgents(size_t limit) const {
  std::string sql = absl::StrCat(kAgentColumns, " ORDER BY a.agent_id LIMIT ?1");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) {
    return s.Error("list agents");
  }
  s.Int(1, static_cast<int64_t>(limit));
  std::vector<AgentRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(ReadAgent(s));
  }
  if (rc != SQLITE_DONE) {
    return s.Error("list agents");
  }
  return out;
}

absl::StatusOr<size_t> StateStore::CountAssigned(std::string_view url) const {
  Stmt s(db_,
         "SELECT COUNT(*) FROM assignments s JOIN agents a ON a.agent_id = s.agent_id "
         "WHERE s.streamer_url = ?1 AND a.state = 'active'");
  s.Text(1, url);
  if (!s.ok() || s.Step() != SQLITE_ROW) {
    return s.Error("count assigned");
  }
  return static_cast<size_t>(s.ColInt(0));
}

absl::Status StateStore::RecordActivation(std::string_view serial, std::string_view source,
                                          std::string_view result, int64_t now_ms) {
  Stmt s(db_, "INSERT INTO activations (serial, source, result, at_ms) VALUES (?1, ?2, ?3, ?4)");
  s.Text(1, serial).Text(2, source).Text(3, result).Int(4, now_ms);
  return RunToDone(s, "record activation");
}

absl::Status StateStore::Audit(const AuditEntry& e) {
  Stmt s(db_,
         "INSERT INTO audit (at_ms, actor, action, subject, detail) "
         "VALUES (?1, ?2, ?3, ?4, ?5)");
  s.Int(1, e.at_ms).Text(2, e.actor).Text(3, e.action).Text(4, e.subject).Text(5, e.detail);
  return RunToDone(s, "audit");
}

absl::StatusOr<std::vector<AuditEntry>> StateStore::RecentAudit(size_t limit) const {
  Stmt s(db_,
         "SELECT at_ms, actor, action, subject, detail FROM audit ORDER BY id DESC "
         "LIMIT ?1");
  if (!s.ok()) {
    return s.Error("audit");
  }
  s.Int(1, static_cast<int64_t>(limit));
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back({s.ColInt(0), s.ColText(1), s.ColText(2), s.ColText(3), s.ColText(4)});
  }
  if (rc != SQLITE_DONE) {
    return s.Error("audit");
  }
  return out;
}

}  // namespace camtunnel::manager
