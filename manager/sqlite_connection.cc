// See sqlite_connection.h.
#include "manager/sqlite_connection.h"

#include <sqlite3.h>

#include <algorithm>
#include <span>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

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
    // 3: the link registry (which manager holds each agent's link, fenced by an epoch) and
    // commands as rows (PROTOCOL.md 10.6); AUTOINCREMENT: a command id is never reused. Indexes
    // for the admin API's filters.
    R"sql(
CREATE TABLE links (
  agent_id TEXT PRIMARY KEY,
  manager_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  linked_at_ms INTEGER NOT NULL
);
CREATE TABLE link_epochs (
  agent_id TEXT PRIMARY KEY,
  epoch INTEGER NOT NULL
);
CREATE TABLE commands (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  argument TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  state TEXT NOT NULL,
  manager_id TEXT NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX commands_open ON commands(state, agent_id, id);
CREATE INDEX agents_by_operator ON agents(operator_id, agent_id);
CREATE INDEX agents_by_state ON agents(state, agent_id);
)sql",
    // 4: leadership leases (leader_lease.h) and the leader's Streamer health; indexes for
    // retention (PruneHistory).
    R"sql(
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  term INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL
);
CREATE TABLE streamer_health (
  url TEXT PRIMARY KEY,
  healthy INTEGER NOT NULL,
  changed_at_ms INTEGER NOT NULL
);
CREATE INDEX activations_by_time ON activations(at_ms);
CREATE INDEX audit_by_time ON audit(at_ms);
CREATE INDEX commands_by_update ON commands(updated_at_ms);
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
    // A default string_view has no data pointer, which SQLite would bind as NULL, not ''.
    sqlite3_bind_text(stmt_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
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
  // For the next row of a batch: same statement, fresh bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
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

// A row of kAgentColumns, its secret opened: a row whose secret does not open is an error for
// the whole read (DATA_LOSS naming the agent), never an agent with a zero secret.
absl::StatusOr<AgentRecord> ReadAgent(const Stmt& s, const SecretSealer* sealer) {
  AgentRecord r;
  r.agent_id = s.ColText(0);
  auto secret = OpenFromStore(sealer, r.agent_id, s.ColBlob(1));
  if (!secret.ok()) {
    return secret.status();
  }
  r.secret = *secret;
  r.state = s.ColText(2) == "deactivated" ? AgentState::kDeactivated : AgentState::kActive;
  r.operator_id = s.ColText(3);
  r.activated_at_ms = s.ColInt(4);
  r.last_seen_ms = s.ColInt(5);
  r.last_status = s.ColText(6);
  r.streamer_url = s.ColText(7);
  r.located_url = s.ColText(8);
  return r;
}

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

template <typename T>
struct IsStatusOr : std::false_type {};
template <typename T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};

// Runs `s` to the end, reading each row with `read`, which returns a T or an absl::StatusOr<T>
// (the first error ends the read).
template <typename T, typename Read>
absl::StatusOr<std::vector<T>> ReadAll(Stmt& s, std::string_view what, Read read) {
  if (!s.ok()) {
    return s.Error(what);
  }
  std::vector<T> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    if constexpr (IsStatusOr<decltype(read(s))>::value) {
      auto row = read(s);
      if (!row.ok()) {
        return row.status();
      }
      out.push_back(std::move(*row));
    } else {
      out.push_back(read(s));
    }
  }
  if (rc != SQLITE_DONE) {
    return s.Error(what);
  }
  return out;
}

// The WHERE clause of an agent query: only the filters it sets, as numbered placeholders bound by
// BindAgentFilters (values are never spliced into the SQL).
std::string AgentFilters(const AgentQuery& q, bool with_cursor) {
  std::string where = " WHERE 1=1";
  if (with_cursor && !q.after.empty()) {
    absl::StrAppend(&where, " AND a.agent_id > ?1");
  }
  if (q.state) {
    absl::StrAppend(&where, " AND a.state = ?2");
  }
  if (!q.streamer_url.empty()) {
    absl::StrAppend(&where, " AND s.streamer_url = ?3");
  }
  if (!q.operator_id.empty()) {
    absl::StrAppend(&where, " AND a.operator_id = ?4");
  }
  if (q.seen_since_ms > 0) {
    absl::StrAppend(&where, " AND a.last_seen_ms >= ?5");
  }
  if (q.seen_before_ms > 0) {
    absl::StrAppend(&where, " AND a.last_seen_ms < ?7");
  }
  return where;
}

void BindAgentFilters(Stmt& s, const AgentQuery& q) {
  s.Text(1, q.after)
      .Text(3, q.streamer_url)
      .Text(4, q.operator_id)
      .Int(5, q.seen_since_ms)
      .Int(7, q.seen_before_ms);
  if (q.state) {
    s.Text(2, AgentStateName(*q.state));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::Open(
    const std::string& path, const SecretSealer* sealer) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open state database ", path, ": ", msg));
  }
  std::unique_ptr<SqliteConnection> store(new SqliteConnection(db, sealer));
  // WAL + synchronous=FULL: an activation answered 200 is on disk (a secret issued and then
  // lost would lock the camera out), and readers never block the writer.
  if (absl::Status st = store->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                    "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=2000;");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = store->Migrate(); !st.ok()) {
    return st;
  }
  return store;
}

SqliteConnection::~SqliteConnection() { sqlite3_close(db_); }

absl::Status SqliteConnection::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

int SqliteConnection::schema_version() {
  Stmt s(db_, "PRAGMA user_version");
  return s.ok() && s.Step() == SQLITE_ROW ? static_cast<int>(s.ColInt(0)) : -1;
}

absl::Status SqliteConnection::Migrate() {
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
      (void)Exec("ROLLBACK;");
      return absl::InternalError(absl::StrCat("migration ", v + 1, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteConnection::Transaction(const std::function<absl::Status()>& body) {
  // One writer per file: BEGIN IMMEDIATE takes the write lock up front, so there is no conflict
  // to retry (busy_timeout waits out another process). Nested calls join the outer transaction.
  if (transaction_depth_ > 0) {
    return body();
  }
  if (absl::Status st = Exec("BEGIN IMMEDIATE;"); !st.ok()) {
    return st;
  }
  ++transaction_depth_;
  absl::Status st = body();
  --transaction_depth_;
  if (!st.ok()) {
    (void)Exec("ROLLBACK;");
    return st;
  }
  if (absl::Status commit = Exec("COMMIT;"); !commit.ok()) {
    (void)Exec("ROLLBACK;");
    return commit;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AgentRecord>> SqliteConnection::FindAgent(std::string_view id) {
  std::string sql = absl::StrCat(kAgentColumns, " WHERE a.agent_id = ?1");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) {
    return s.Error("find agent");
  }
  s.Text(1, id);
  const int rc = s.Step();
  if (rc == SQLITE_ROW) {
    auto agent = ReadAgent(s, sealer_);
    if (!agent.ok()) {
      return agent.status();
    }
    return std::optional<AgentRecord>(std::move(*agent));
  }
  if (rc == SQLITE_DONE) {
    return std::optional<AgentRecord>();
  }
  return s.Error("find agent");
}

absl::Status SqliteConnection::PutAgent(const AgentRecord& a) {
  // An upsert, not INSERT OR REPLACE: a replaced row would cascade-delete its assignment.
  Stmt s(db_,
         "INSERT INTO agents (agent_id, secret, state, operator_id, activated_at_ms, "
         "last_seen_ms, last_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
         "ON CONFLICT(agent_id) DO UPDATE SET secret = excluded.secret, state = excluded.state, "
         "operator_id = excluded.operator_id, activated_at_ms = excluded.activated_at_ms, "
         "last_seen_ms = excluded.last_seen_ms, last_status = excluded.last_status");
  s.Text(1, a.agent_id)
      .Blob(2, SealForStore(sealer_, a.agent_id, a.secret))
      .Text(3, AgentStateName(a.state))
      .Text(4, a.operator_id)
      .Int(5, a.activated_at_ms)
      .Int(6, a.last_seen_ms)
      .Text(7, a.last_status);
  return RunToDone(s, "put agent");
}

absl::Status SqliteConnection::SetState(std::string_view id, AgentState state) {
  return Transaction([&]() -> absl::Status {
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
  });
}

absl::Status SqliteConnection::RecordStatus(std::string_view id, std::string_view status,
                                            int64_t now_ms) {
  Stmt s(db_, "UPDATE agents SET last_status = ?2, last_seen_ms = ?3 WHERE agent_id = ?1");
  s.Text(1, id).Text(2, status).Int(3, now_ms);
  return RunToDone(s, "record status");
}

absl::Status SqliteConnection::RecordSeen(const std::vector<SeenUpdate>& updates) {
  return Transaction([&]() -> absl::Status {
    Stmt s(db_,
           "UPDATE agents SET last_seen_ms = MAX(last_seen_ms, ?2), "
           "last_status = CASE WHEN ?3 = '' THEN last_status ELSE ?3 END WHERE agent_id = ?1");
    if (!s.ok()) {
      return s.Error("record seen");
    }
    for (const SeenUpdate& u : updates) {
      s.Text(1, u.agent_id).Int(2, u.last_seen_ms).Text(3, u.status);
      if (absl::Status st = RunToDone(s, "record seen"); !st.ok()) {
        return st;
      }
      s.Reset();
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteConnection::RecordAssignment(std::string_view id, std::string_view url,
                                                int64_t now_ms) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO assignments (agent_id, streamer_url, at_ms) "
         "VALUES (?1, ?2, ?3)");
  s.Text(1, id).Text(2, url).Int(3, now_ms);
  return RunToDone(s, "record assignment");
}

absl::Status SqliteConnection::RecordLocation(std::string_view id, std::string_view url) {
  Stmt s(db_, "UPDATE agents SET located_streamer = ?2 WHERE agent_id = ?1");
  s.Text(1, id).Text(2, url);
  return RunToDone(s, "record location");
}

absl::StatusOr<AgentPage> SqliteConnection::ListAgents(const AgentQuery& query) {
  const std::string sql = absl::StrCat(kAgentColumns, AgentFilters(query, /*with_cursor=*/true),
                                       " ORDER BY a.agent_id LIMIT ?6");
  Stmt s(db_, sql.c_str());
  BindAgentFilters(s, query);
  // One row more than the page: whether there is a next page, without an empty last one.
  s.Int(6, static_cast<int64_t>(query.limit) + 1);
  auto rows = ReadAll<AgentRecord>(s, "list agents",
                                   [this](const Stmt& r) { return ReadAgent(r, sealer_); });
  if (!rows.ok()) {
    return rows.status();
  }
  AgentPage page{.agents = std::move(*rows)};
  if (page.agents.size() > query.limit) {
    page.agents.resize(query.limit);
    page.next = page.agents.empty() ? std::string() : page.agents.back().agent_id;
  }
  return page;
}

absl::StatusOr<uint64_t> SqliteConnection::CountAgents(const AgentQuery& query) {
  // The assignments are joined only to filter by Streamer: a count over every agent of a
  // fleet is then one index scan, not a join.
  const std::string sql = absl::StrCat(
      "SELECT COUNT(*) FROM agents a",
      query.streamer_url.empty() ? "" : " JOIN assignments s ON s.agent_id = a.agent_id",
      AgentFilters(query, /*with_cursor=*/false));
  Stmt s(db_, sql.c_str());
  BindAgentFilters(s, query);
  if (!s.ok() || s.Step() != SQLITE_ROW) {
    return s.Error("count agents");
  }
  return static_cast<uint64_t>(s.ColInt(0));
}

absl::StatusOr<std::map<std::string, uint64_t>> SqliteConnection::CountAssignedByStreamer() {
  Stmt s(db_,
         "SELECT s.streamer_url, COUNT(*) FROM assignments s JOIN agents a "
         "ON a.agent_id = s.agent_id WHERE a.state = 'active' GROUP BY s.streamer_url");
  auto rows = ReadAll<std::pair<std::string, uint64_t>>(s, "count assigned", [](const Stmt& r) {
    return std::make_pair(r.ColText(0), static_cast<uint64_t>(r.ColInt(1)));
  });
  if (!rows.ok()) {
    return rows.status();
  }
  return std::map<std::string, uint64_t>(rows->begin(), rows->end());
}

absl::StatusOr<std::vector<std::string>> SqliteConnection::ListDeactivated() {
  Stmt s(db_, "SELECT agent_id FROM agents WHERE state = 'deactivated' ORDER BY agent_id");
  return ReadAll<std::string>(s, "list deactivated", [](const Stmt& r) { return r.ColText(0); });
}

absl::Status SqliteConnection::PutClaim(const ClaimRecord& c) {
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

absl::StatusOr<bool> SqliteConnection::DeleteClaim(std::string_view serial) {
  Stmt s(db_, "DELETE FROM claims WHERE serial = ?1");
  s.Text(1, serial);
  if (absl::Status st = RunToDone(s, "delete claim"); !st.ok()) {
    return st;
  }
  return sqlite3_changes(db_) > 0;
}

absl::StatusOr<std::optional<ClaimRecord>> SqliteConnection::FindClaim(std::string_view serial) {
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

absl::StatusOr<std::vector<ClaimRecord>> SqliteConnection::ListClaims(std::string_view after,
                                                                      size_t limit) {
  std::string sql = absl::StrCat(kClaimColumns, " WHERE serial > ?1 ORDER BY serial LIMIT ?2");
  Stmt s(db_, sql.c_str());
  s.Text(1, after).Int(2, static_cast<int64_t>(limit));
  return ReadAll<ClaimRecord>(s, "list claims", ReadClaim);
}

absl::StatusOr<int64_t> SqliteConnection::ClaimLink(std::string_view agent_id,
                                                    std::string_view manager_id, int64_t now_ms) {
  int64_t epoch = 0;
  absl::Status st = Transaction([&]() -> absl::Status {
    // The epoch outlives the claim (link_epochs): a released and reclaimed link still gets a
    // higher one, so a stale holder never matches again.
    Stmt bump(db_,
              "INSERT INTO link_epochs (agent_id, epoch) VALUES (?1, 1) ON CONFLICT(agent_id) "
              "DO UPDATE SET epoch = epoch + 1 RETURNING epoch");
    bump.Text(1, agent_id);
    if (!bump.ok() || bump.Step() != SQLITE_ROW) {
      return bump.Error("claim link");
    }
    epoch = bump.ColInt(0);
    if (absl::Status done = RunToDone(bump, "claim link"); !done.ok()) {
      return done;
    }
    Stmt s(db_,
           "INSERT OR REPLACE INTO links (agent_id, manager_id, epoch, linked_at_ms) "
           "VALUES (?1, ?2, ?3, ?4)");
    s.Text(1, agent_id).Text(2, manager_id).Int(3, epoch).Int(4, now_ms);
    return RunToDone(s, "claim link");
  });
  if (!st.ok()) {
    return st;
  }
  return epoch;
}

absl::Status SqliteConnection::ReleaseLink(std::string_view agent_id, std::string_view manager_id,
                                           int64_t epoch) {
  Stmt s(db_, "DELETE FROM links WHERE agent_id = ?1 AND manager_id = ?2 AND epoch = ?3");
  s.Text(1, agent_id).Text(2, manager_id).Int(3, epoch);
  return RunToDone(s, "release link");
}

absl::StatusOr<std::optional<LinkClaim>> SqliteConnection::FindLink(std::string_view agent_id) {
  Stmt s(db_, "SELECT manager_id, epoch FROM links WHERE agent_id = ?1");
  s.Text(1, agent_id);
  auto rows = ReadAll<LinkClaim>(s, "find link", [](const Stmt& r) {
    return LinkClaim{.manager_id = r.ColText(0), .epoch = r.ColInt(1)};
  });
  if (!rows.ok()) {
    return rows.status();
  }
  return rows->empty() ? std::optional<LinkClaim>() : std::optional<LinkClaim>(rows->front());
}

namespace {

constexpr const char* kCommandColumns =
    "SELECT id, agent_id, kind, argument, requested_by, created_at_ms, deadline_ms, state, "
    "manager_id, epoch, outcome, updated_at_ms FROM commands";

CommandRecord ReadCommand(const Stmt& r) {
  return {.id = r.ColInt(0),
          .agent_id = r.ColText(1),
          .kind = r.ColText(2),
          .argument = r.ColText(3),
          .requested_by = r.ColText(4),
          .created_at_ms = r.ColInt(5),
          .deadline_ms = r.ColInt(6),
          .state = ParseCommandState(r.ColText(7)).value_or(CommandState::kFailed),
          .manager_id = r.ColText(8),
          .epoch = r.ColInt(9),
          .outcome = r.ColText(10),
          .updated_at_ms = r.ColInt(11)};
}

}  // namespace

absl::StatusOr<int64_t> SqliteConnection::EnqueueCommand(const CommandRecord& c) {
  Stmt s(db_,
         "INSERT INTO commands (agent_id, kind, argument, requested_by, created_at_ms, "
         "deadline_ms, state, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?5)");
  s.Text(1, c.agent_id)
      .Text(2, c.kind)
      .Text(3, c.argument)
      .Text(4, c.requested_by)
      .Int(5, c.created_at_ms)
      .Int(6, c.deadline_ms);
  if (absl::Status st = RunToDone(s, "enqueue command"); !st.ok()) {
    return st;
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

absl::StatusOr<std::optional<CommandRecord>> SqliteConnection::FindCommand(int64_t id) {
  const std::string sql = absl::StrCat(kCommandColumns, " WHERE id = ?1");
  Stmt s(db_, sql.c_str());
  s.Int(1, id);
  auto rows = ReadAll<CommandRecord>(s, "find command", ReadCommand);
  if (!rows.ok()) {
    return rows.status();
  }
  return rows->empty() ? std::optional<CommandRecord>()
                       : std::optional<CommandRecord>(rows->front());
}

absl::StatusOr<std::optional<CommandRecord>> SqliteConnection::TakeCommand(
    int64_t id, std::string_view manager_id, int64_t epoch, int64_t now_ms) {
  std::optional<CommandRecord> taken;
  absl::Status st = Transaction([&]() -> absl::Status {
    taken.reset();
    Stmt s(db_,
           "UPDATE commands SET state = 'sent', manager_id = ?2, epoch = ?3, updated_at_ms = ?4 "
           "WHERE id = ?1 AND state IN ('queued', 'sent') AND deadline_ms > ?4 AND EXISTS "
           "(SELECT 1 FROM links l WHERE l.agent_id = commands.agent_id AND l.manager_id = ?2 "
           "AND l.epoch = ?3)");
    s.Int(1, id).Text(2, manager_id).Int(3, epoch).Int(4, now_ms);
    if (absl::Status done = RunToDone(s, "take command"); !done.ok()) {
      return done;
    }
    if (sqlite3_changes(db_) == 0) {
      return absl::OkStatus();
    }
    auto found = FindCommand(id);
    if (!found.ok()) {
      return found.status();
    }
    taken = std::move(*found);
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return taken;
}

absl::StatusOr<std::vector<CommandRecord>> SqliteConnection::PendingCommands(
    std::string_view agent_id, std::string_view manager_id, int64_t now_ms) {
  const std::string sql = absl::StrCat(
      kCommandColumns,
      " WHERE state IN ('queued', 'sent') AND deadline_ms > ?3 AND (?1 = '' OR agent_id = ?1) "
      "AND (?2 = '' OR agent_id IN (SELECT agent_id FROM links WHERE manager_id = ?2)) "
      "ORDER BY id");
  Stmt s(db_, sql.c_str());
  s.Text(1, agent_id).Text(2, manager_id).Int(3, now_ms);
  return ReadAll<CommandRecord>(s, "pending commands", ReadCommand);
}

absl::StatusOr<bool> SqliteConnection::FinishCommand(int64_t id, CommandState state,
                                                     std::string_view outcome, int64_t now_ms) {
  Stmt s(db_,
         "UPDATE commands SET state = ?2, outcome = ?3, updated_at_ms = ?4 "
         "WHERE id = ?1 AND state IN ('queued', 'sent')");
  s.Int(1, id).Text(2, CommandStateName(state)).Text(3, outcome).Int(4, now_ms);
  if (absl::Status st = RunToDone(s, "finish command"); !st.ok()) {
    return st;
  }
  return sqlite3_changes(db_) > 0;
}

// AUTOINCREMENT keeps its high-water mark in sqlite_sequence, which may be raised by hand.
absl::StatusOr<int64_t> SqliteConnection::LastCommandId() {
  Stmt s(db_,
         "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'commands'), 0), "
         "COALESCE((SELECT MAX(id) FROM commands), 0))");
  if (!s.ok() || s.Step() != SQLITE_ROW) {
    return s.Error("last command id");
  }
  return s.ColInt(0);
}

absl::Status SqliteConnection::KeepCommandIdsAbove(int64_t id) {
  return Transaction([&]() -> absl::Status {
    auto last = LastCommandId();
    if (!last.ok()) {
      return last.status();
    }
    if (*last >= id) {
      return absl::OkStatus();
    }
    Stmt del(db_, "DELETE FROM sqlite_sequence WHERE name = 'commands'");
    if (absl::Status st = RunToDone(del, "command id floor"); !st.ok()) {
      return st;
    }
    Stmt ins(db_, "INSERT INTO sqlite_sequence (name, seq) VALUES ('commands', ?1)");
    ins.Int(1, id);
    return RunToDone(ins, "command id floor");
  });
}

absl::StatusOr<uint64_t> SqliteConnection::ExpireCommands(int64_t now_ms) {
  Stmt s(db_,
         "UPDATE commands SET state = 'expired', updated_at_ms = ?1, outcome = CASE state WHEN "
         "'sent' THEN 'sent, not acknowledged before the deadline' ELSE 'agent not linked "
         "before the deadline' END WHERE state IN ('queued', 'sent') AND deadline_ms <= ?1");
  s.Int(1, now_ms);
  if (absl::Status st = RunToDone(s, "expire commands"); !st.ok()) {
    return st;
  }
  return static_cast<uint64_t>(sqlite3_changes(db_));
}
namespace {

// The wall clock in milliseconds, as SQL: leases run on the database's clock (one host here).
constexpr const char* kNowMs = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

}  // namespace

absl::StatusOr<Lease> SqliteConnection::AcquireLease(std::string_view name, std::string_view holder,
                                                     int64_t ttl_ms) {
  // Renewal keeps the term; a takeover (the holder let it expire) bumps it. The SET's right-hand
  // sides read the row as it was, so the term is compared with the old holder.
  std::string upsert = absl::StrCat(
      "INSERT INTO leases (name, holder, term, expires_ms) VALUES (?1, ?2, 1, ", kNowMs,
      " + ?3) ON CONFLICT(name) DO UPDATE SET term = CASE WHEN leases.holder = excluded.holder "
      "THEN leases.term ELSE leases.term + 1 END, holder = excluded.holder, expires_ms = ",
      kNowMs, " + ?3 WHERE leases.holder = excluded.holder OR leases.expires_ms <= ", kNowMs,
      " RETURNING holder, term, ?3");
  std::string current =
      absl::StrCat("SELECT holder, term, expires_ms - ", kNowMs, " FROM leases WHERE name = ?1");
  std::optional<Lease> lease;
  absl::Status st = Transaction([&]() -> absl::Status {
    Stmt s(db_, upsert.c_str());
    s.Text(1, name).Text(2, holder).Int(3, ttl_ms);
    auto taken = ReadAll<Lease>(s, "acquire lease", [](const Stmt& r) {
      return Lease{
          .holder = r.ColText(0), .term = r.ColInt(1), .held = true, .expires_in_ms = r.ColInt(2)};
    });
    if (!taken.ok()) {
      return taken.status();
    }
    if (!taken->empty()) {
      lease = taken->front();
      return absl::OkStatus();
    }
    Stmt q(db_, current.c_str());
    q.Text(1, name);
    auto held = ReadAll<Lease>(q, "read lease", [](const Stmt& r) {
      return Lease{
          .holder = r.ColText(0), .term = r.ColInt(1), .held = false, .expires_in_ms = r.ColInt(2)};
    });
    if (!held.ok()) {
      return held.status();
    }
    lease = held->empty() ? Lease{} : held->front();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return *lease;
}

absl::Status SqliteConnection::CheckLease(std::string_view name, std::string_view holder,
                                          int64_t term) {
  // Inside a transaction (BEGIN IMMEDIATE) nobody else writes until the commit.
  std::string sql = absl::StrCat(
      "SELECT 1 FROM leases WHERE name = ?1 AND holder = ?2 AND term = ?3 AND expires_ms > ",
      kNowMs);
  Stmt s(db_, sql.c_str());
  s.Text(1, name).Text(2, holder).Int(3, term);
  auto rows = ReadAll<int64_t>(s, "check lease", [](const Stmt& r) { return r.ColInt(0); });
  if (!rows.ok()) {
    return rows.status();
  }
  if (rows->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", std::string(name), " term ", term, " is no longer held"));
  }
  return absl::OkStatus();
}

absl::Status SqliteConnection::SetStreamerHealth(std::string_view url, bool healthy,
                                                 int64_t now_ms) {
  Stmt s(db_,
         "INSERT INTO streamer_health (url, healthy, changed_at_ms) VALUES (?1, ?2, ?3) "
         "ON CONFLICT(url) DO UPDATE SET healthy = excluded.healthy, "
         "changed_at_ms = excluded.changed_at_ms");
  s.Text(1, url).Int(2, healthy ? 1 : 0).Int(3, now_ms);
  return RunToDone(s, "set streamer health");
}

absl::StatusOr<std::map<std::string, bool>> SqliteConnection::ListStreamerHealth() {
  Stmt s(db_, "SELECT url, healthy FROM streamer_health");
  auto rows = ReadAll<std::pair<std::string, bool>>(s, "list streamer health", [](const Stmt& r) {
    return std::make_pair(r.ColText(0), r.ColInt(1) != 0);
  });
  if (!rows.ok()) {
    return rows.status();
  }
  return std::map<std::string, bool>(rows->begin(), rows->end());
}

absl::StatusOr<uint64_t> SqliteConnection::PruneHistory(int64_t before_ms, size_t limit) {
  constexpr const char* kPrunes[] = {
      "DELETE FROM activations WHERE id IN (SELECT id FROM activations WHERE at_ms < ?1 "
      "ORDER BY id LIMIT ?2)",
      "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ms < ?1 ORDER BY id LIMIT ?2)",
      "DELETE FROM commands WHERE id IN (SELECT id FROM commands WHERE updated_at_ms < ?1 AND "
      "state IN ('acked', 'failed', 'expired') ORDER BY id LIMIT ?2)",
  };
  uint64_t pruned = 0;
  for (const char* sql : kPrunes) {
    Stmt s(db_, sql);
    s.Int(1, before_ms).Int(2, static_cast<int64_t>(limit));
    if (absl::Status st = RunToDone(s, "prune history"); !st.ok()) {
      return st;
    }
    pruned += static_cast<uint64_t>(sqlite3_changes(db_));
  }
  return pruned;
}

absl::Status SqliteConnection::RecordActivation(const ActivationEntry& e) {
  Stmt s(db_, "INSERT INTO activations (serial, source, result, at_ms) VALUES (?1, ?2, ?3, ?4)");
  s.Text(1, e.serial).Text(2, e.source).Text(3, e.result).Int(4, e.at_ms);
  return RunToDone(s, "record activation");
}

absl::StatusOr<std::vector<ActivationEntry>> SqliteConnection::ListActivations(int64_t after_id,
                                                                               size_t limit) {
  Stmt s(db_,
         "SELECT id, serial, source, result, at_ms FROM activations WHERE id > ?1 ORDER BY id "
         "LIMIT ?2");
  s.Int(1, after_id).Int(2, static_cast<int64_t>(limit));
  return ReadAll<ActivationEntry>(s, "list activations", [](const Stmt& r) {
    return ActivationEntry{.id = r.ColInt(0),
                           .serial = r.ColText(1),
                           .source = r.ColText(2),
                           .result = r.ColText(3),
                           .at_ms = r.ColInt(4)};
  });
}

absl::Status SqliteConnection::Audit(const AuditEntry& e) {
  Stmt s(db_,
         "INSERT INTO audit (at_ms, actor, action, subject, detail) "
         "VALUES (?1, ?2, ?3, ?4, ?5)");
  s.Int(1, e.at_ms).Text(2, e.actor).Text(3, e.action).Text(4, e.subject).Text(5, e.detail);
  return RunToDone(s, "audit");
}

namespace {

constexpr const char* kAuditColumns = "SELECT at_ms, actor, action, subject, detail, id FROM audit";

AuditEntry ReadAudit(const Stmt& r) {
  return {.at_ms = r.ColInt(0),
          .actor = r.ColText(1),
          .action = r.ColText(2),
          .subject = r.ColText(3),
          .detail = r.ColText(4),
          .id = r.ColInt(5)};
}

}  // namespace

absl::StatusOr<std::vector<AuditEntry>> SqliteConnection::RecentAudit(size_t limit) {
  const std::string sql = absl::StrCat(kAuditColumns, " ORDER BY id DESC LIMIT ?1");
  Stmt s(db_, sql.c_str());
  s.Int(1, static_cast<int64_t>(limit));
  return ReadAll<AuditEntry>(s, "audit", ReadAudit);
}

absl::StatusOr<std::vector<AuditEntry>> SqliteConnection::ListAudit(int64_t after_id,
                                                                    size_t limit) {
  const std::string sql = absl::StrCat(kAuditColumns, " WHERE id > ?1 ORDER BY id LIMIT ?2");
  Stmt s(db_, sql.c_str());
  s.Int(1, after_id).Int(2, static_cast<int64_t>(limit));
  return ReadAll<AuditEntry>(s, "audit", ReadAudit);
}

}  // namespace camtunnel::manager
