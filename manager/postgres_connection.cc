// See postgres_connection.h.
#include "manager/postgres_connection.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "manager/postgres_conninfo.h"
#include "runtime/log.h"

namespace camtunnel::manager {
namespace {

// Type OIDs of the parameters (pg_type.dat), given explicitly so the server never has to guess
// the type of a binary value.
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kTextArrayOid = 1009;
constexpr Oid kInt8ArrayOid = 1016;

constexpr int kTextFormat = 0;
constexpr int kBinaryFormat = 1;

// The key of the advisory lock migrations run under ("camtunnl"): any fixed number works, as long
// as every manager uses the same one.
constexpr const char* kMigrationLock = "7161117404484152940";

// A conflict with a concurrent transaction runs the body again at most this many times in all.
constexpr int kTransactionAttempts = 3;

// Append-only: a released migration is never edited, a change is a new entry. The tables mirror
// SQLite's (sqlite_connection.cc); agent ids and serials compare bytewise (COLLATE "C") as
// SQLite's TEXT does, so ordering and keyset paging do not depend on the database's locale.
constexpr const char* kMigrations[] = {
    // 1: agents, assignments, activation attempts, audit trail, claims (SQLite's 1 and 2).
    R"sql(
CREATE TABLE agents (
  agent_id TEXT COLLATE "C" PRIMARY KEY,
  secret BYTEA NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('active', 'deactivated')),
  operator_id TEXT NOT NULL DEFAULT '',
  activated_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL DEFAULT 0,
  last_status TEXT NOT NULL DEFAULT '',
  located_streamer TEXT NOT NULL DEFAULT ''
);
-- ListAgents' filters, each walking agent id order for keyset paging.
CREATE INDEX agents_by_operator ON agents (operator_id, agent_id);
CREATE INDEX agents_by_state ON agents (state, agent_id);
CREATE TABLE assignments (
  agent_id TEXT COLLATE "C" PRIMARY KEY REFERENCES agents (agent_id) ON DELETE CASCADE,
  streamer_url TEXT NOT NULL,
  at_ms BIGINT NOT NULL
);
CREATE INDEX assignments_by_streamer ON assignments (streamer_url, agent_id);
CREATE TABLE activations (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  serial TEXT NOT NULL,
  source TEXT NOT NULL,
  result TEXT NOT NULL,
  at_ms BIGINT NOT NULL
);
CREATE TABLE audit (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE TABLE claims (
  serial TEXT COLLATE "C" PRIMARY KEY,
  operator_id TEXT NOT NULL,
  token_salt BYTEA NOT NULL,
  token_hash BYTEA NOT NULL,
  created_at_ms BIGINT NOT NULL
);
)sql",
    // 2: the link registry (which manager holds each agent's link, fenced by an epoch that
    // outlives the claim) and commands as rows (PROTOCOL.md 10.6); an identity never reuses an id.
    R"sql(
CREATE TABLE links (
  agent_id TEXT COLLATE "C" PRIMARY KEY,
  manager_id TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  linked_at_ms BIGINT NOT NULL
);
CREATE INDEX links_by_manager ON links (manager_id);
CREATE TABLE link_epochs (
  agent_id TEXT COLLATE "C" PRIMARY KEY,
  epoch BIGINT NOT NULL
);
CREATE TABLE commands (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id TEXT COLLATE "C" NOT NULL,
  kind TEXT NOT NULL,
  argument TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  deadline_ms BIGINT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acked', 'failed', 'expired')),
  manager_id TEXT NOT NULL DEFAULT '',
  epoch BIGINT NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at_ms BIGINT NOT NULL
);
CREATE INDEX commands_open ON commands (state, agent_id, id);
)sql",
    // 3: leadership leases (leader_lease.h) and the leader's Streamer health; indexes for
    // retention (PruneHistory).
    R"sql(
CREATE TABLE leases (
  name TEXT COLLATE "C" PRIMARY KEY,
  holder TEXT NOT NULL,
  term BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL
);
CREATE TABLE streamer_health (
  url TEXT COLLATE "C" PRIMARY KEY,
  healthy BOOLEAN NOT NULL,
  changed_at_ms BIGINT NOT NULL
);
CREATE INDEX activations_by_time ON activations (at_ms);
CREATE INDEX audit_by_time ON audit (at_ms);
CREATE INDEX commands_by_update ON commands (updated_at_ms);
)sql",
};
constexpr int kMigrationCount = static_cast<int>(std::size(kMigrations));
static_assert(kMigrationCount == PostgresConnection::kSchemaVersion);

// A serialization failure (REPEATABLE READ saw a row change under it) or a deadlock: running
// the transaction again is the remedy.
bool IsConflict(std::string_view sqlstate) { return sqlstate == "40001" || sqlstate == "40P01"; }

// The session is gone or cannot write: a connection exception (class 08), the server shutting
// down or starting (57P01..57P03), or a standby refusing a write (25006: the primary this
// session reached was demoted; a reset with target_session_attrs=read-write finds the new one).
// An error without a SQLSTATE is libpq's own, not the server's: the connection failed ("server
// closed the connection unexpectedly" can come back while PQstatus still says OK, when the
// server went away as the statement was being sent).
bool IsSessionLost(PGconn* conn, std::string_view sqlstate) {
  return PQstatus(conn) != CONNECTION_OK || sqlstate.empty() || sqlstate.starts_with("08") ||
         sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" || sqlstate == "25006";
}

std::string Trimmed(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

// libpq prints notices ("relation already exists, skipping") on stderr unless told otherwise.
void LogNotice(void* /*arg*/, const char* message) {
  runtime::LogEvent(runtime::LogLevel::kDebug, "store_notice",
                    {runtime::Kv("message", Trimmed(message))});
}

void PutBigEndian64(int64_t v, char* out) {
  const auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(u >> (56 - 8 * i));
  }
}

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF) at the start of `s`, or 0.
size_t Utf8SequenceLength(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const auto continuation = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const uint8_t lead = b(0);
  if (lead < 0x80) {
    return 1;
  }
  if (lead >= 0xC2 && lead <= 0xDF) {
    return continuation(1) ? 2 : 0;
  }
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!continuation(1) || !continuation(2) || (lead == 0xE0 && b(1) < 0xA0) ||
        (lead == 0xED && b(1) > 0x9F)) {
      return 0;
    }
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3) || (lead == 0xF0 && b(1) < 0x90) ||
        (lead == 0xF4 && b(1) > 0x8F)) {
      return 0;
    }
    return 4;
  }
  return 0;
}

// PostgreSQL text is valid UTF-8 without NUL; SQLite stores any bytes. A value PostgreSQL would
// refuse (an agent's STATUS text can hold anything) is stored with each offending byte replaced
// by U+FFFD instead of failing its statement, and with it a whole batch of last-seen times.
std::string StorableText(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  while (!v.empty()) {
    const size_t n = v[0] == '\0' ? 0 : Utf8SequenceLength(v);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      v.remove_prefix(1);
      continue;
    }
    out.append(v.substr(0, n));
    v.remove_prefix(n);
  }
  return out;
}

// An element of a text-format array literal: always quoted, with `"` and `\` escaped.
void AppendArrayElement(std::string_view v, std::string* out) {
  out->push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
    }
    out->push_back(c);
  }
  out->push_back('"');
}

template <size_t N>
void CopyBytes(std::string_view from, std::array<uint8_t, N>* to) {
  to->fill(0);
  std::memcpy(to->data(), from.data(), std::min(from.size(), N));
}

}  // namespace

// The values of one statement: text, bytea and bigint in binary format (no quoting, no
// parsing), arrays in text format.
class PgParams {
 public:
  PgParams& Text(std::string_view v) { return Add(kTextOid, StorableText(v), kBinaryFormat); }
  PgParams& Bytes(std::span<const uint8_t> v) {
    return Add(kByteaOid, std::string(reinterpret_cast<const char*>(v.data()), v.size()),
               kBinaryFormat);
  }
  PgParams& Int(int64_t v) {
    std::string bytes(8, '\0');
    PutBigEndian64(v, bytes.data());
    return Add(kInt8Oid, std::move(bytes), kBinaryFormat);
  }
  PgParams& TextArray(const std::vector<std::string>& values) {
    std::string literal = "{";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) {
        literal.push_back(',');
      }
      AppendArrayElement(StorableText(values[i]), &literal);
    }
    literal.push_back('}');
    return Add(kTextArrayOid, std::move(literal), kTextFormat);
  }
  PgParams& IntArray(const std::vector<int64_t>& values) {
    std::string literal = "{";
    for (size_t i = 0; i < values.size(); ++i) {
      absl::StrAppend(&literal, i > 0 ? "," : "", values[i]);
    }
    literal.push_back('}');
    return Add(kInt8ArrayOid, std::move(literal), kTextFormat);
  }

  // The placeholder of the next value: "$n".
  std::string Next() const { return absl::StrCat("$", values_.size() + 1); }

  int count() const { return static_cast<int>(values_.size()); }
  const Oid* types() const { return types_.data(); }
  const int* formats() const { return formats_.data(); }
  const int* lengths() const { return lengths_.data(); }
  // Pointers into the stored values, taken once no more are added (a std::string's characters
  // move when the vector grows).
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const std::string& v : values_) {
      out.push_back(v.c_str());
    }
    return out;
  }

 private:
  PgParams& Add(Oid type, std::string value, int format) {
    types_.push_back(type);
    lengths_.push_back(static_cast<int>(value.size()));
    formats_.push_back(format);
    values_.push_back(std::move(value));
    return *this;
  }

  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A statement's result, cleared when dropped. Rows come in binary format: text and bytea as their
// bytes, integers big-endian.
class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}
  PgResult(PgResult&& other) noexcept : r_(std::exchange(other.r_, nullptr)) {}
  PgResult& operator=(PgResult&& other) noexcept {
    if (this != &other) {
      PQclear(r_);
      r_ = std::exchange(other.r_, nullptr);
    }
    return *this;
  }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult() { PQclear(r_); }

  bool ok() const {
    const ExecStatusType s = PQresultStatus(r_);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  std::string_view sqlstate() const {
    const char* s = r_ == nullptr ? nullptr : PQresultErrorField(r_, PG_DIAG_SQLSTATE);
    return s == nullptr ? std::string_view() : std::string_view(s);
  }
  const char* error() const { return r_ == nullptr ? nullptr : PQresultErrorMessage(r_); }

  int rows() const { return PQntuples(r_); }
  std::string_view Bytes(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
  }
  std::string Text(int row, int col) const { return std::string(Bytes(row, col)); }
  // bigint, integer or smallint.
  int64_t Int(int row, int col) const {
    const std::string_view b = Bytes(row, col);
    uint64_t u = 0;
    for (char c : b) {
      u = (u << 8) | static_cast<uint8_t>(c);
    }
    const int bits = static_cast<int>(b.size()) * 8;
    if (bits > 0 && bits < 64 && (u >> (bits - 1)) != 0) {
      u |= ~uint64_t{0} << bits;  // sign-extend
    }
    return static_cast<int64_t>(u);
  }
  // Rows a command touched (UPDATE, DELETE).
  uint64_t affected() const {
    const char* n = PQcmdTuples(r_);
    return n == nullptr || *n == '\0' ? 0 : std::strtoull(n, nullptr, 10);
  }
  std::string_view command() const {
    const char* c = PQcmdStatus(r_);
    return c == nullptr ? std::string_view() : std::string_view(c);
  }

 private:
  PGresult* r_;
};

namespace {

constexpr const char* kAgentSelect =
    "SELECT a.agent_id, a.secret, a.state, a.operator_id, a.activated_at_ms, a.last_seen_ms, "
    "a.last_status, COALESCE(s.streamer_url, ''), a.located_streamer FROM agents a "
    "LEFT JOIN assignments s ON s.agent_id = a.agent_id";

// A row of kAgentSelect, its secret opened: a row whose secret does not open is an error for the
// whole read (DATA_LOSS naming the agent), never an agent with a zero secret.
absl::StatusOr<AgentRecord> ReadAgent(const PgResult& r, int row, const SecretSealer* sealer) {
  AgentRecord a;
  a.agent_id = r.Text(row, 0);
  const std::string_view stored = r.Bytes(row, 1);
  absl::StatusOr<proto::AgentSecret> secret = OpenFromStore(
      sealer, a.agent_id, {reinterpret_cast<const uint8_t*>(stored.data()), stored.size()});
  if (!secret.ok()) {
    return secret.status();
  }
  a.secret = *secret;
  a.state = r.Bytes(row, 2) == "deactivated" ? AgentState::kDeactivated : AgentState::kActive;
  a.operator_id = r.Text(row, 3);
  a.activated_at_ms = r.Int(row, 4);
  a.last_seen_ms = r.Int(row, 5);
  a.last_status = r.Text(row, 6);
  a.streamer_url = r.Text(row, 7);
  a.located_url = r.Text(row, 8);
  return a;
}

constexpr const char* kClaimSelect =
    "SELECT serial, operator_id, token_salt, token_hash, created_at_ms FROM claims";

ClaimRecord ReadClaim(const PgResult& r, int row) {
  ClaimRecord c;
  c.serial = r.Text(row, 0);
  c.operator_id = r.Text(row, 1);
  CopyBytes(r.Bytes(row, 2), &c.token_salt);
  CopyBytes(r.Bytes(row, 3), &c.token_hash);
  c.created_at_ms = r.Int(row, 4);
  return c;
}

constexpr const char* kAuditSelect = "SELECT id, at_ms, actor, action, subject, detail FROM audit";

std::vector<AuditEntry> ReadAudit(const PgResult& r) {
  std::vector<AuditEntry> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({.at_ms = r.Int(i, 1),
                   .actor = r.Text(i, 2),
                   .action = r.Text(i, 3),
                   .subject = r.Text(i, 4),
                   .detail = r.Text(i, 5),
                   .id = r.Int(i, 0)});
  }
  return out;
}

// " WHERE ... AND ..." for the query's filters (and its cursor when `with_cursor`), values in
// `params`.
std::string AgentFilters(const AgentQuery& q, bool with_cursor, PgParams* params) {
  std::string where;
  auto add = [&](const char* condition) {
    absl::StrAppend(&where, where.empty() ? " WHERE " : " AND ", condition, params->Next());
  };
  if (with_cursor && !q.after.empty()) {
    add("a.agent_id > ");
    params->Text(q.after);
  }
  if (q.state.has_value()) {
    add("a.state = ");
    params->Text(AgentStateName(*q.state));
  }
  if (!q.streamer_url.empty()) {
    add("s.streamer_url = ");
    params->Text(q.streamer_url);
  }
  if (!q.operator_id.empty()) {
    add("a.operator_id = ");
    params->Text(q.operator_id);
  }
  if (q.seen_since_ms > 0) {
    add("a.last_seen_ms >= ");
    params->Int(q.seen_since_ms);
  }
  if (q.seen_before_ms > 0) {
    add("a.last_seen_ms < ");  // never seen (0) included
    params->Int(q.seen_before_ms);
  }
  return where;
}

// A LIMIT value: size_t beyond int64 means "all".
int64_t LimitValue(size_t limit) {
  return static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresConnection>> PostgresConnection::Open(
    const std::string& conninfo, const SecretSealer* sealer) {
  absl::StatusOr<PgConnectParams> params = PgConnectParams::Parse(conninfo);
  if (!params.ok()) {
    return params.status();
  }
  const std::vector<const char*> keywords = params->keyword_array();
  const std::vector<const char*> values = params->value_array();
  PGconn* conn = PQconnectdbParams(keywords.data(), values.data(), 0);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a PostgreSQL connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = Trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("cannot connect to the state database: ", message));
  }
  PQsetNoticeProcessor(conn, LogNotice, nullptr);
  std::unique_ptr<PostgresConnection> c(new PostgresConnection(conn, sealer));
  if (absl::Status st = c->Migrate(); !st.ok()) {
    return st;
  }
  return c;
}

PostgresConnection::~PostgresConnection() { PQfinish(conn_); }

absl::StatusOr<PgResult> PostgresConnection::Exec(std::string_view what, const std::string& sql,
                                                  const PgParams& params) {
  const std::vector<const char*> values = params.pointers();
  return Run(what, [&] {
    return PQexecParams(conn_, sql.c_str(), params.count(), params.types(), values.data(),
                        params.lengths(), params.formats(), kBinaryFormat);
  });
}

absl::Status PostgresConnection::ExecScript(std::string_view what, const std::string& sql) {
  return Run(what, [&] { return PQexec(conn_, sql.c_str()); }).status();
}

absl::StatusOr<PgResult> PostgresConnection::Run(std::string_view what,
                                                 absl::FunctionRef<pg_result*()> send) {
  for (int attempt = 0;; ++attempt) {
    PgResult r(send());
    if (r.ok()) {
      return r;
    }
    // absl::StrCat takes absl::string_view, which Debian's abseil does not alias to std's.
    const std::string op(what);
    const std::string sqlstate(r.sqlstate());
    std::string message =
        Trimmed(r.error() != nullptr && *r.error() != '\0' ? r.error() : PQerrorMessage(conn_));
    if (IsConflict(sqlstate)) {
      transaction_conflict_ = in_transaction_;
      return absl::AbortedError(absl::StrCat(op, ": ", message));
    }
    if (!IsSessionLost(conn_, sqlstate)) {
      return absl::InternalError(absl::StrCat(op, ": ", message, " (SQLSTATE ", sqlstate, ")"));
    }
    // Reconnect now, so the next call finds a working session even when this one gives up.
    PQreset(conn_);
    const bool reconnected = PQstatus(conn_) == CONNECTION_OK;
    runtime::LogEvent(runtime::LogLevel::kWarning, "store_session_reset",
                      {runtime::Kv("op", what), runtime::Kv("error", message),
                       runtime::Kv("reconnected", reconnected)});
    // Inside a transaction the statements before this one are lost with the session: the
    // caller decides whether to run it all again. Outside, the statement runs once more (for an
    // INSERT whose commit reached the server before the session broke, that means twice: an
    // audit line may repeat, none is lost).
    if (!reconnected || in_transaction_ || attempt > 0) {
      return absl::UnavailableError(
          absl::StrCat(op, ": state database unavailable: ",
                       reconnected ? message : Trimmed(PQerrorMessage(conn_))));
    }
  }
}

absl::Status PostgresConnection::Transaction(const std::function<absl::Status()>& body) {
  if (in_transaction_) {
    return body();  // a part of the transaction already open
  }
  absl::Status result;
  for (int attempt = 1; attempt <= kTransactionAttempts; ++attempt) {
    transaction_conflict_ = false;
    // REPEATABLE READ: one snapshot for the whole body, and a row another manager changed
    // since is a serialization failure (retried) instead of a lost update.
    if (absl::Status st = ExecScript("begin", "BEGIN ISOLATION LEVEL REPEATABLE READ"); !st.ok()) {
      return st;
    }
    in_transaction_ = true;
    result = body();
    if (result.ok()) {
      absl::StatusOr<PgResult> commit = Exec("commit", "COMMIT", PgParams());
      if (commit.ok() && commit->command() == "COMMIT") {
        in_transaction_ = false;
        return absl::OkStatus();
      }
      // COMMIT of a transaction a failed statement aborted answers ROLLBACK: the body went on
      // past an error.
      result = commit.ok() ? absl::AbortedError("transaction rolled back after a failed statement")
                           : commit.status();
    } else {
      // Nothing to roll back when the session was lost; the error to report is the body's.
      (void)ExecScript("rollback", "ROLLBACK");
    }
    in_transaction_ = false;
    if (!transaction_conflict_ || attempt == kTransactionAttempts) {
      return result;
    }
    runtime::LogEvent(runtime::LogLevel::kInfo, "store_transaction_retry",
                      {runtime::Kv("attempt", attempt), runtime::Kv("status", result.ToString())});
  }
  return result;
}

int PostgresConnection::schema_version() {
  absl::StatusOr<PgResult> r =
      Exec("schema version", "SELECT version FROM schema_version", PgParams());
  return r.ok() && r->rows() == 1 ? static_cast<int>(r->Int(0, 0)) : -1;
}

absl::Status PostgresConnection::Ping() {
  // A broken session is reset by Run (and the query sent again): a reachable server answers OK.
  return Exec("ping", "SELECT 1", PgParams()).status();
}

absl::Status PostgresConnection::Migrate() {
  // The version table itself, created under the lock too: two managers creating it at once
  // would collide in the catalog. One implicit transaction (a multi-statement query), so the
  // transaction-scoped lock is held to its end.
  if (absl::Status st = ExecScript("schema version table",
                                   absl::StrCat("SELECT pg_advisory_xact_lock(", kMigrationLock,
                                                ");"
                                                "CREATE TABLE IF NOT EXISTS schema_version ("
                                                "  singleton BOOLEAN PRIMARY KEY DEFAULT TRUE "
                                                "CHECK (singleton),"
                                                "  version INTEGER NOT NULL);"
                                                "INSERT INTO schema_version (version) VALUES (0) "
                                                "ON CONFLICT DO NOTHING;"));
      !st.ok()) {
    return st;
  }
  const int current = schema_version();
  if (current < 0) {
    return absl::InternalError("cannot read the state database's schema version");
  }
  if (current > kMigrationCount) {
    // A newer manager wrote this database; running old code on it could corrupt it.
    return absl::FailedPreconditionError(absl::StrCat(
        "state database schema ", current, " is newer than this manager's ", kMigrationCount));
  }
  for (int v = current; v < kMigrationCount; ++v) {
    if (absl::Status st = MigrateOne(v + 1, kMigrations[v]); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresConnection::MigrateOne(int version, const char* sql) {
  // READ COMMITTED, not the REPEATABLE READ of Transaction(): the version is read after the lock
  // is taken and must see what a manager that held the lock before committed.
  if (absl::Status st = ExecScript("begin migration", "BEGIN"); !st.ok()) {
    return st;
  }
  in_transaction_ = true;
  auto apply = [&]() -> absl::Status {
    if (absl::Status st = ExecScript(
            "migration lock", absl::StrCat("SELECT pg_advisory_xact_lock(", kMigrationLock, ")"));
        !st.ok()) {
      return st;
    }
    const int current = schema_version();
    if (current < 0) {
      return absl::InternalError("cannot read the state database's schema version");
    }
    if (current >= version) {
      return absl::OkStatus();  // another manager applied it meanwhile
    }
    if (absl::Status st = ExecScript("migration", sql); !st.ok()) {
      return st;
    }
    PgParams p;
    p.Int(version);
    return Exec("schema version", "UPDATE schema_version SET version = $1::bigint", p).status();
  };
  absl::Status st = apply();
  if (st.ok()) {
    st = ExecScript("commit migration", "COMMIT");
  } else {
    (void)ExecScript("rollback migration", "ROLLBACK");
  }
  in_transaction_ = false;
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("migration ", version, ": ", st.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AgentRecord>> PostgresConnection::FindAgent(std::string_view id) {
  PgParams p;
  p.Text(id);
  absl::StatusOr<PgResult> r =
      Exec("find agent", absl::StrCat(kAgentSelect, " WHERE a.agent_id = $1"), p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() == 0) {
    return std::optional<AgentRecord>();
  }
  absl::StatusOr<AgentRecord> agent = ReadAgent(*r, 0, sealer_);
  if (!agent.ok()) {
    return agent.status();
  }
  return std::optional<AgentRecord>(std::move(*agent));
}

absl::Status PostgresConnection::PutAgent(const AgentRecord& a) {
  PgParams p;
  p.Text(a.agent_id)
      .Bytes(SealForStore(sealer_, a.agent_id, a.secret))
      .Text(AgentStateName(a.state))
      .Text(a.operator_id)
      .Int(a.activated_at_ms)
      .Int(a.last_seen_ms)
      .Text(a.last_status);
  // An upsert, not a delete and insert: the assignment (a row that references the agent) and
  // the located Streamer stay.
  return Exec("put agent",
              "INSERT INTO agents (agent_id, secret, state, operator_id, activated_at_ms, "
              "last_seen_ms, last_status) VALUES ($1, $2, $3, $4, $5, $6, $7) "
              "ON CONFLICT (agent_id) DO UPDATE SET secret = EXCLUDED.secret, "
              "state = EXCLUDED.state, operator_id = EXCLUDED.operator_id, "
              "activated_at_ms = EXCLUDED.activated_at_ms, last_seen_ms = EXCLUDED.last_seen_ms, "
              "last_status = EXCLUDED.last_status",
              p)
      .status();
}

absl::Status PostgresConnection::SetState(std::string_view id, AgentState state) {
  PgParams p;
  p.Text(id).Text(AgentStateName(state));
  // One statement: a deactivated agent never keeps its assignment, even for a moment.
  return Exec("set state",
              "WITH updated AS (UPDATE agents SET state = $2 WHERE agent_id = $1) "
              "DELETE FROM assignments WHERE agent_id = $1 AND $2 = 'deactivated'",
              p)
      .status();
}

absl::Status PostgresConnection::RecordStatus(std::string_view id, std::string_view status,
                                              int64_t now_ms) {
  PgParams p;
  p.Text(id).Text(status).Int(now_ms);
  return Exec("record status",
              "UPDATE agents SET last_status = $2, last_seen_ms = $3 WHERE agent_id = $1", p)
      .status();
}

absl::Status PostgresConnection::RecordSeen(const std::vector<SeenUpdate>& updates) {
  if (updates.empty()) {
    return absl::OkStatus();
  }
  // One statement for the whole batch (one round trip). Last-seen times only move forward; an
  // agent named twice ends as if the updates ran in order: the latest time, the last non-empty
  // status.
  absl::flat_hash_map<std::string_view, size_t> index;
  std::vector<std::string> ids;
  std::vector<int64_t> seen;
  std::vector<std::string> statuses;
  for (const SeenUpdate& u : updates) {
    auto [it, inserted] = index.try_emplace(u.agent_id, ids.size());
    if (inserted) {
      ids.push_back(u.agent_id);
      seen.push_back(u.last_seen_ms);
      statuses.push_back(u.status);
      continue;
    }
    seen[it->second] = std::max(seen[it->second], u.last_seen_ms);
    if (!u.status.empty()) {
      statuses[it->second] = u.status;
    }
  }
  PgParams p;
  p.TextArray(ids).IntArray(seen).TextArray(statuses);
  return Exec("record seen",
              "UPDATE agents a SET last_seen_ms = GREATEST(a.last_seen_ms, u.seen), last_status = "
              "CASE WHEN u.status = '' "
              "THEN a.last_status ELSE u.status END "
              "FROM unnest($1, $2, $3) AS u(agent_id, seen, status) "
              "WHERE a.agent_id = u.agent_id",
              p)
      .status();
}

absl::Status PostgresConnection::RecordAssignment(std::string_view id, std::string_view url,
                                                  int64_t now_ms) {
  PgParams p;
  p.Text(id).Text(url).Int(now_ms);
  return Exec("record assignment",
              "INSERT INTO assignments (agent_id, streamer_url, at_ms) VALUES ($1, $2, $3) "
              "ON CONFLICT (agent_id) DO UPDATE SET streamer_url = EXCLUDED.streamer_url, "
              "at_ms = EXCLUDED.at_ms",
              p)
      .status();
}

absl::Status PostgresConnection::RecordLocation(std::string_view id, std::string_view url) {
  PgParams p;
  p.Text(id).Text(url);
  return Exec("record location", "UPDATE agents SET located_streamer = $2 WHERE agent_id = $1", p)
      .status();
}

absl::StatusOr<AgentPage> PostgresConnection::ListAgents(const AgentQuery& query) {
  PgParams p;
  // Two statements: the LIMIT's placeholder follows the filters' (argument order is unspecified).
  std::string sql = absl::StrCat(kAgentSelect, AgentFilters(query, /*with_cursor=*/true, &p));
  absl::StrAppend(&sql, " ORDER BY a.agent_id LIMIT ", p.Next());
  // One row more than the page: whether there is a next page, without an empty last one.
  const int64_t limit = LimitValue(query.limit);
  p.Int(limit == INT64_MAX ? limit : limit + 1);
  absl::StatusOr<PgResult> r = Exec("list agents", sql, p);
  if (!r.ok()) {
    return r.status();
  }
  AgentPage page;
  page.agents.reserve(r->rows());
  for (int i = 0; i < r->rows(); ++i) {
    absl::StatusOr<AgentRecord> agent = ReadAgent(*r, i, sealer_);
    if (!agent.ok()) {
      return agent.status();
    }
    page.agents.push_back(std::move(*agent));
  }
  if (page.agents.size() > query.limit) {
    page.agents.resize(query.limit);
    page.next = page.agents.empty() ? std::string() : page.agents.back().agent_id;
  }
  return page;
}

absl::StatusOr<uint64_t> PostgresConnection::CountAgents(const AgentQuery& query) {
  PgParams p;
  // The assignments are joined only to filter by Streamer: a count over every agent of a
  // fleet is then one index scan, not a join.
  std::string sql = absl::StrCat(
      "SELECT COUNT(*) FROM agents a",
      query.streamer_url.empty() ? "" : " JOIN assignments s ON s.agent_id = a.agent_id",
      AgentFilters(query, /*with_cursor=*/false, &p));
  absl::StatusOr<PgResult> r = Exec("count agents", sql, p);
  if (!r.ok()) {
    return r.status();
  }
  return static_cast<uint64_t>(r->Int(0, 0));
}

absl::StatusOr<std::map<std::string, uint64_t>> PostgresConnection::CountAssignedByStreamer() {
  absl::StatusOr<PgResult> r =
      Exec("count assigned",
           "SELECT s.streamer_url, COUNT(*) FROM assignments s JOIN agents a "
           "ON a.agent_id = s.agent_id WHERE a.state = 'active' GROUP BY s.streamer_url",
           PgParams());
  if (!r.ok()) {
    return r.status();
  }
  std::map<std::string, uint64_t> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.emplace(r->Text(i, 0), static_cast<uint64_t>(r->Int(i, 1)));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> PostgresConnection::ListDeactivated() {
  absl::StatusOr<PgResult> r =
      Exec("list deactivated",
           "SELECT agent_id FROM agents WHERE state = 'deactivated' ORDER BY agent_id", PgParams());
  if (!r.ok()) {
    return r.status();
  }
  std::vector<std::string> out;
  out.reserve(r->rows());
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(r->Text(i, 0));
  }
  return out;
}

absl::Status PostgresConnection::PutClaim(const ClaimRecord& c) {
  PgParams p;
  p.Text(c.serial).Text(c.operator_id).Bytes(c.token_salt).Bytes(c.token_hash).Int(c.created_at_ms);
  return Exec("put claim",
              "INSERT INTO claims (serial, operator_id, token_salt, token_hash, created_at_ms) "
              "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (serial) DO UPDATE SET "
              "operator_id = EXCLUDED.operator_id, token_salt = EXCLUDED.token_salt, "
              "token_hash = EXCLUDED.token_hash, created_at_ms = EXCLUDED.created_at_ms",
              p)
      .status();
}

absl::StatusOr<std::optional<ClaimRecord>> PostgresConnection::FindClaim(std::string_view serial) {
  PgParams p;
  p.Text(serial);
  absl::StatusOr<PgResult> r =
      Exec("find claim", absl::StrCat(kClaimSelect, " WHERE serial = $1"), p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() == 0) {
    return std::optional<ClaimRecord>();
  }
  return std::optional<ClaimRecord>(ReadClaim(*r, 0));
}

absl::StatusOr<bool> PostgresConnection::DeleteClaim(std::string_view serial) {
  PgParams p;
  p.Text(serial);
  absl::StatusOr<PgResult> r = Exec("delete claim", "DELETE FROM claims WHERE serial = $1", p);
  if (!r.ok()) {
    return r.status();
  }
  return r->affected() > 0;
}

absl::StatusOr<std::vector<ClaimRecord>> PostgresConnection::ListClaims(std::string_view after,
                                                                        size_t limit) {
  PgParams p;
  p.Text(after).Int(LimitValue(limit));
  absl::StatusOr<PgResult> r = Exec(
      "list claims", absl::StrCat(kClaimSelect, " WHERE serial > $1 ORDER BY serial LIMIT $2"), p);
  if (!r.ok()) {
    return r.status();
  }
  std::vector<ClaimRecord> out;
  out.reserve(r->rows());
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(ReadClaim(*r, i));
  }
  return out;
}

absl::StatusOr<int64_t> PostgresConnection::ClaimLink(std::string_view agent_id,
                                                      std::string_view manager_id, int64_t now_ms) {
  PgParams p;
  p.Text(agent_id).Text(manager_id).Int(now_ms);
  // One statement: the epoch's row lock orders concurrent claims of one agent. The epoch
  // outlives the claim (link_epochs): a released and reclaimed link still gets a higher one, so
  // a stale holder never matches again.
  absl::StatusOr<PgResult> r =
      Exec("claim link",
           "WITH bumped AS (INSERT INTO link_epochs (agent_id, epoch) VALUES ($1, 1) "
           "ON CONFLICT (agent_id) DO UPDATE SET epoch = link_epochs.epoch + 1 RETURNING epoch) "
           "INSERT INTO links (agent_id, manager_id, epoch, linked_at_ms) "
           "SELECT $1, $2, epoch, $3 FROM bumped ON CONFLICT (agent_id) DO UPDATE SET "
           "manager_id = EXCLUDED.manager_id, epoch = EXCLUDED.epoch, "
           "linked_at_ms = EXCLUDED.linked_at_ms RETURNING epoch",
           p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() != 1) {
    return absl::InternalError("claim link: no epoch returned");
  }
  return r->Int(0, 0);
}

absl::Status PostgresConnection::ReleaseLink(std::string_view agent_id, std::string_view manager_id,
                                             int64_t epoch) {
  PgParams p;
  p.Text(agent_id).Text(manager_id).Int(epoch);
  return Exec("release link",
              "DELETE FROM links WHERE agent_id = $1 AND manager_id = $2 AND epoch = $3", p)
      .status();
}

absl::StatusOr<std::optional<LinkClaim>> PostgresConnection::FindLink(std::string_view agent_id) {
  PgParams p;
  p.Text(agent_id);
  absl::StatusOr<PgResult> r =
      Exec("find link", "SELECT manager_id, epoch FROM links WHERE agent_id = $1", p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() == 0) {
    return std::optional<LinkClaim>();
  }
  return std::optional<LinkClaim>(LinkClaim{.manager_id = r->Text(0, 0), .epoch = r->Int(0, 1)});
}

namespace {

constexpr const char* kCommandColumns =
    "id, agent_id, kind, argument, requested_by, created_at_ms, deadline_ms, state, manager_id, "
    "epoch, outcome, updated_at_ms";

std::vector<CommandRecord> ReadCommands(const PgResult& r) {
  std::vector<CommandRecord> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({.id = r.Int(i, 0),
                   .agent_id = r.Text(i, 1),
                   .kind = r.Text(i, 2),
                   .argument = r.Text(i, 3),
                   .requested_by = r.Text(i, 4),
                   .created_at_ms = r.Int(i, 5),
                   .deadline_ms = r.Int(i, 6),
                   .state = ParseCommandState(r.Bytes(i, 7)).value_or(CommandState::kFailed),
                   .manager_id = r.Text(i, 8),
                   .epoch = r.Int(i, 9),
                   .outcome = r.Text(i, 10),
                   .updated_at_ms = r.Int(i, 11)});
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> PostgresConnection::EnqueueCommand(const CommandRecord& c) {
  PgParams p;
  p.Text(c.agent_id)
      .Text(c.kind)
      .Text(c.argument)
      .Text(c.requested_by)
      .Int(c.created_at_ms)
      .Int(c.deadline_ms);
  // The notification travels in the insert's own transaction: PostgreSQL delivers it at
  // commit, so a listener that reads the row finds it, and a rolled-back insert notifies nobody.
  absl::StatusOr<PgResult> r =
      Exec("enqueue command",
           absl::StrCat("WITH inserted AS (INSERT INTO commands (agent_id, kind, argument, "
                        "requested_by, created_at_ms, deadline_ms, state, updated_at_ms) VALUES "
                        "($1, $2, $3, $4, $5, $6, 'queued', $5) RETURNING id) "
                        "SELECT id, pg_notify('",
                        kCommandChannel, "', id::text) FROM inserted"),
           p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() != 1) {
    return absl::InternalError("enqueue command: no id returned");
  }
  return r->Int(0, 0);
}

absl::StatusOr<std::optional<CommandRecord>> PostgresConnection::FindCommand(int64_t id) {
  PgParams p;
  p.Int(id);
  absl::StatusOr<PgResult> r = Exec(
      "find command", absl::StrCat("SELECT ", kCommandColumns, " FROM commands WHERE id = $1"), p);
  if (!r.ok()) {
    return r.status();
  }
  std::vector<CommandRecord> rows = ReadCommands(*r);
  return rows.empty() ? std::optional<CommandRecord>() : std::optional<CommandRecord>(rows[0]);
}

absl::StatusOr<std::optional<CommandRecord>> PostgresConnection::TakeCommand(
    int64_t id, std::string_view manager_id, int64_t epoch, int64_t now_ms) {
  std::optional<CommandRecord> taken;
  // REPEATABLE READ (Transaction) with the link's row locked: a claim by another manager that
  // committed after this snapshot is a serialization failure, and the retry sees the new epoch.
  absl::Status st = Transaction([&]() -> absl::Status {
    taken.reset();
    PgParams p;
    p.Int(id).Text(manager_id).Int(epoch).Int(now_ms);
    absl::StatusOr<PgResult> r = Exec(
        "take command",
        absl::StrCat("UPDATE commands c SET state = 'sent', manager_id = $2, epoch = $3, "
                     "updated_at_ms = $4 WHERE c.id = $1 AND c.state IN ('queued', 'sent') AND "
                     "c.deadline_ms > $4 AND EXISTS (SELECT 1 FROM links l WHERE l.agent_id = "
                     "c.agent_id AND l.manager_id = $2 AND l.epoch = $3 FOR SHARE) RETURNING ",
                     kCommandColumns),
        p);
    if (!r.ok()) {
      return r.status();
    }
    std::vector<CommandRecord> rows = ReadCommands(*r);
    if (!rows.empty()) {
      taken = std::move(rows[0]);
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    return st;
  }
  return taken;
}

absl::StatusOr<std::vector<CommandRecord>> PostgresConnection::PendingCommands(
    std::string_view agent_id, std::string_view manager_id, int64_t now_ms) {
  PgParams p;
  p.Text(agent_id).Text(manager_id).Int(now_ms);
  absl::StatusOr<PgResult> r =
      Exec("pending commands",
           absl::StrCat("SELECT ", kCommandColumns,
                        " FROM commands WHERE state IN ('queued', 'sent') AND deadline_ms > $3 AND "
                        "($1 = '' OR agent_id = $1) AND ($2 = '' OR agent_id IN "
                        "(SELECT agent_id FROM links WHERE manager_id = $2)) ORDER BY id"),
           p);
  if (!r.ok()) {
    return r.status();
  }
  return ReadCommands(*r);
}

absl::StatusOr<bool> PostgresConnection::FinishCommand(int64_t id, CommandState state,
                                                       std::string_view outcome, int64_t now_ms) {
  PgParams p;
  p.Int(id).Text(CommandStateName(state)).Text(outcome).Int(now_ms);
  absl::StatusOr<PgResult> r = Exec("finish command",
                                    "UPDATE commands SET state = $2, outcome = $3, "
                                    "updated_at_ms = $4 WHERE id = $1 AND state IN ('queued', "
                                    "'sent')",
                                    p);
  if (!r.ok()) {
    return r.status();
  }
  return r->affected() > 0;
}

// The identity column's sequence holds the high-water mark even when rows are gone.
absl::StatusOr<int64_t> PostgresConnection::LastCommandId() {
  PgParams p;
  absl::StatusOr<PgResult> r = Exec(
      "last command id",
      "SELECT GREATEST(COALESCE((SELECT MAX(id) FROM commands), 0), COALESCE("
      "pg_sequence_last_value(pg_get_serial_sequence('commands', 'id')::regclass), 0))::bigint",
      p);
  if (!r.ok()) {
    return r.status();
  }
  return r->Int(0, 0);
}

absl::Status PostgresConnection::KeepCommandIdsAbove(int64_t id) {
  return Transaction([&]() -> absl::Status {
    absl::StatusOr<int64_t> last = LastCommandId();
    if (!last.ok()) {
      return last.status();
    }
    if (*last >= id) {
      return absl::OkStatus();
    }
    PgParams p;
    p.Int(id);
    return Exec("command id floor",
                "SELECT setval(pg_get_serial_sequence('commands', 'id'), $1::bigint, true)", p)
        .status();
  });
}

absl::StatusOr<uint64_t> PostgresConnection::ExpireCommands(int64_t now_ms) {
  PgParams p;
  p.Int(now_ms);
  absl::StatusOr<PgResult> r =
      Exec("expire commands",
           "UPDATE commands SET state = 'expired', updated_at_ms = $1, outcome = CASE state "
           "WHEN 'sent' THEN 'sent, not acknowledged before the deadline' ELSE 'agent not "
           "linked before the deadline' END WHERE state IN ('queued', 'sent') AND "
           "deadline_ms <= $1",
           p);
  if (!r.ok()) {
    return r.status();
  }
  return r->affected();
}

namespace {

// The database's clock in milliseconds: leases must not depend on the managers' clocks agreeing.
// clock_timestamp(), not now(): now() is the transaction's start, frozen inside a long one.
constexpr const char* kNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

Lease ReadLease(const PgResult& r, bool held) {
  return Lease{
      .holder = r.Text(0, 0), .term = r.Int(0, 1), .held = held, .expires_in_ms = r.Int(0, 2)};
}

}  // namespace

absl::StatusOr<Lease> PostgresConnection::AcquireLease(std::string_view name,
                                                       std::string_view holder, int64_t ttl_ms) {
  PgParams p;
  p.Text(name).Text(holder).Int(ttl_ms);
  // One statement: the row lock orders concurrent managers, and the WHERE is judged on the row
  // as it is once locked. Renewal keeps the term; a takeover (its holder let it expire) bumps it.
  absl::StatusOr<PgResult> r =
      Exec("acquire lease",
           absl::StrCat(
               "INSERT INTO leases (name, holder, term, expires_ms) VALUES ($1, $2, 1, ", kNowMs,
               " + $3) ON CONFLICT (name) DO UPDATE SET term = CASE WHEN "
               "leases.holder = EXCLUDED.holder THEN leases.term ELSE leases.term + 1 END, "
               "holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms "
               "WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms <= ",
               kNowMs, " RETURNING holder, term, $3"),
           p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() == 1) {
    return ReadLease(*r, true);
  }
  PgParams q;
  q.Text(name);
  absl::StatusOr<PgResult> current = Exec(
      "read lease",
      absl::StrCat("SELECT holder, term, expires_ms - ", kNowMs, " FROM leases WHERE name = $1"),
      q);
  if (!current.ok()) {
    return current.status();
  }
  return current->rows() == 1 ? ReadLease(*current, false) : Lease{};
}

absl::Status PostgresConnection::CheckLease(std::string_view name, std::string_view holder,
                                            int64_t term) {
  PgParams p;
  p.Text(name).Text(holder).Int(term);
  // FOR SHARE: inside a transaction, a takeover waits for our commit, and one that committed
  // since our snapshot is a serialization failure (the transaction runs again and sees it).
  absl::StatusOr<PgResult> r =
      Exec("check lease",
           absl::StrCat("SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND term = $3 AND "
                        "expires_ms > ",
                        kNowMs, " FOR SHARE"),
           p);
  if (!r.ok()) {
    return r.status();
  }
  if (r->rows() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", std::string(name), " term ", term, " is no longer held"));
  }
  return absl::OkStatus();
}

absl::Status PostgresConnection::SetStreamerHealth(std::string_view url, bool healthy,
                                                   int64_t now_ms) {
  PgParams p;
  p.Text(url).Int(healthy ? 1 : 0).Int(now_ms);
  return Exec("set streamer health",
              "INSERT INTO streamer_health (url, healthy, changed_at_ms) VALUES ($1, $2 <> 0, $3) "
              "ON CONFLICT (url) DO UPDATE SET healthy = EXCLUDED.healthy, "
              "changed_at_ms = EXCLUDED.changed_at_ms",
              p)
      .status();
}

absl::StatusOr<std::map<std::string, bool>> PostgresConnection::ListStreamerHealth() {
  absl::StatusOr<PgResult> r =
      Exec("list streamer health", "SELECT url, healthy::int FROM streamer_health", PgParams());
  if (!r.ok()) {
    return r.status();
  }
  std::map<std::string, bool> out;
  for (int i = 0; i < r->rows(); ++i) {
    out[r->Text(i, 0)] = r->Int(i, 1) != 0;
  }
  return out;
}

absl::StatusOr<uint64_t> PostgresConnection::PruneHistory(int64_t before_ms, size_t limit) {
  constexpr const char* kPrunes[] = {
      "DELETE FROM activations WHERE id IN (SELECT id FROM activations WHERE at_ms < $1 "
      "ORDER BY id LIMIT $2)",
      "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ms < $1 ORDER BY id LIMIT $2)",
      "DELETE FROM commands WHERE id IN (SELECT id FROM commands WHERE updated_at_ms < $1 AND "
      "state IN ('acked', 'failed', 'expired') ORDER BY id LIMIT $2)",
  };
  uint64_t pruned = 0;
  for (const char* sql : kPrunes) {
    PgParams p;
    p.Int(before_ms).Int(LimitValue(limit));
    absl::StatusOr<PgResult> r = Exec("prune history", sql, p);
    if (!r.ok()) {
      return r.status();
    }
    pruned += r->affected();
  }
  return pruned;
}

absl::Status PostgresConnection::RecordActivation(const ActivationEntry& e) {
  PgParams p;
  p.Text(e.serial).Text(e.source).Text(e.result).Int(e.at_ms);
  return Exec("record activation",
              "INSERT INTO activations (serial, source, result, at_ms) VALUES ($1, $2, $3, $4)", p)
      .status();
}

absl::StatusOr<std::vector<ActivationEntry>> PostgresConnection::ListActivations(int64_t after_id,
                                                                                 size_t limit) {
  PgParams p;
  p.Int(after_id).Int(LimitValue(limit));
  absl::StatusOr<PgResult> r = Exec("list activations",
                                    "SELECT id, serial, source, result, at_ms FROM activations "
                                    "WHERE id > $1 ORDER BY id LIMIT $2",
                                    p);
  if (!r.ok()) {
    return r.status();
  }
  std::vector<ActivationEntry> out;
  out.reserve(r->rows());
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back({.id = r->Int(i, 0),
                   .serial = r->Text(i, 1),
                   .source = r->Text(i, 2),
                   .result = r->Text(i, 3),
                   .at_ms = r->Int(i, 4)});
  }
  return out;
}

absl::Status PostgresConnection::Audit(const AuditEntry& e) {
  PgParams p;
  p.Int(e.at_ms).Text(e.actor).Text(e.action).Text(e.subject).Text(e.detail);
  return Exec("audit",
              "INSERT INTO audit (at_ms, actor, action, subject, detail) "
              "VALUES ($1, $2, $3, $4, $5)",
              p)
      .status();
}

absl::StatusOr<std::vector<AuditEntry>> PostgresConnection::RecentAudit(size_t limit) {
  PgParams p;
  p.Int(LimitValue(limit));
  absl::StatusOr<PgResult> r =
      Exec("recent audit", absl::StrCat(kAuditSelect, " ORDER BY id DESC LIMIT $1"), p);
  if (!r.ok()) {
    return r.status();
  }
  return ReadAudit(*r);
}

absl::StatusOr<std::vector<AuditEntry>> PostgresConnection::ListAudit(int64_t after_id,
                                                                      size_t limit) {
  PgParams p;
  p.Int(after_id).Int(LimitValue(limit));
  absl::StatusOr<PgResult> r =
      Exec("list audit", absl::StrCat(kAuditSelect, " WHERE id > $1 ORDER BY id LIMIT $2"), p);
  if (!r.ok()) {
    return r.status();
  }
  return ReadAudit(*r);
}

}  // namespace camtunnel::manager
