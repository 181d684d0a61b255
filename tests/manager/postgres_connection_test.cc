// What only the PostgreSQL backend has to get right (the behaviour both backends share is in
// store_suite_test.cc): a server that restarts or goes away, managers that migrate at the same
// time, transactions that conflict with another manager's.
#include "manager/postgres_connection.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pg_cluster.h"

namespace camtunnel::manager {
namespace {

using ::camtunnel::test_support::PgCluster;

AgentRecord Agent(std::string id) {
  AgentRecord r{.agent_id = std::move(id), .operator_id = "acme", .activated_at_ms = 1000};
  r.secret.fill(9);
  return r;
}

// One statement on a connection of its own (another manager, or an operator's psql).
void RunSql(const std::string& conninfo, const char* sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, sql);
  EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
      << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
}

class PostgresConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
  }

  // A cluster of the test's own, for tests that stop or restart it.
  void StartOwnCluster() {
    absl::StatusOr<std::unique_ptr<PgCluster>> started = PgCluster::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    own_cluster_ = std::move(*started);
    absl::StatusOr<std::string> db = own_cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    conninfo_ = *db;
  }

  void UseSharedCluster() {
    absl::StatusOr<std::string> db = PgCluster::SharedDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    conninfo_ = *db;
  }

  std::unique_ptr<PostgresConnection> Open() {
    absl::StatusOr<std::unique_ptr<PostgresConnection>> opened =
        PostgresConnection::Open(conninfo_);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  std::unique_ptr<PgCluster> own_cluster_;
  std::string conninfo_;
};

TEST_F(PostgresConnectionTest, RejectsAMalformedConninfo) {
  absl::StatusOr<std::unique_ptr<PostgresConnection>> opened =
      PostgresConnection::Open("host=/tmp no_such_option=1");
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument) << opened.status();
}

TEST_F(PostgresConnectionTest, AnUnreachableServerIsUnavailable) {
  // A socket folder no server listens in.
  const std::filesystem::path empty =
      std::filesystem::temp_directory_path() / ("camtunnel-no-pg-" + std::to_string(getpid()));
  std::filesystem::create_directories(empty);
  absl::StatusOr<std::unique_ptr<PostgresConnection>> opened =
      PostgresConnection::Open("host=" + empty.string() + " dbname=camtunnel");
  std::filesystem::remove_all(empty);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnavailable) << opened.status();
}

// The application name stands for every default added to the conninfo: unlike keepalives it is
// visible from the server.
std::string ApplicationNameOf(const std::string& admin_conninfo, const std::string& dbname) {
  PGconn* conn = PQconnectdb(admin_conninfo.c_str());
  std::string name;
  const char* values[] = {dbname.c_str()};
  PGresult* r = PQexecParams(conn,
                             "SELECT application_name FROM pg_stat_activity WHERE datname = $1 "
                             "AND pid <> pg_backend_pid()",
                             1, nullptr, values, nullptr, nullptr, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    name = PQgetvalue(r, 0, 0);
  }
  PQclear(r);
  PQfinish(conn);
  return name;
}

TEST_F(PostgresConnectionTest, AddsItsDefaultsUnlessTheConninfoSetsThem) {
  absl::StatusOr<PgCluster*> cluster = PgCluster::Shared();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  // A database per case: a closed session may linger in pg_stat_activity for a moment.
  auto fresh_database = [&]() -> std::string {
    absl::StatusOr<std::string> db = (*cluster)->CreateDatabase();
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? db->substr(db->rfind('=') + 1) : "";
  };
  const std::string admin = (*cluster)->conninfo();
  {
    const std::string db = fresh_database();
    absl::StatusOr<std::unique_ptr<PostgresConnection>> store =
        PostgresConnection::Open((*cluster)->conninfo(db));
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(ApplicationNameOf(admin, db), "camtunnel-manager");
  }
  {
    const std::string db = fresh_database();
    absl::StatusOr<std::unique_ptr<PostgresConnection>> store =
        PostgresConnection::Open((*cluster)->conninfo(db) + " application_name=mgr-7");
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(ApplicationNameOf(admin, db), "mgr-7");
  }
  {
    // A URI, the socket folder percent-encoded as its host.
    const std::string db = fresh_database();
    std::string host;
    for (char c : (*cluster)->folder()) {
      host += c == '/' ? std::string("%2F") : std::string(1, c);
    }
    absl::StatusOr<std::unique_ptr<PostgresConnection>> store =
        PostgresConnection::Open("postgresql://postgres@" + host + "/" + db + "?connect_timeout=3");
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(ApplicationNameOf(admin, db), "camtunnel-manager");
  }
}

TEST_F(PostgresConnectionTest, ReconnectsAfterTheServerRestarts) {
  ASSERT_NO_FATAL_FAILURE(StartOwnCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE(own_cluster_->Restart().ok());
  // The session died with the server: the call resets it and runs again, unnoticed by the caller.
  absl::StatusOr<std::optional<AgentRecord>> found = store->FindAgent("cam-1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->has_value());
  EXPECT_TRUE(store->Audit({.actor = "admin", .action = "after restart"}).ok());
}

TEST_F(PostgresConnectionTest, IsUnavailableWhileTheServerIsDownAndRecoversAfter) {
  ASSERT_NO_FATAL_FAILURE(StartOwnCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(own_cluster_->Stop().ok());
  absl::StatusOr<std::optional<AgentRecord>> down = store->FindAgent("cam-1");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_EQ(store->PutAgent(Agent("cam-1")).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(own_cluster_->Restart().ok());
  ASSERT_TRUE(store->PutAgent(Agent("cam-1")).ok());
  EXPECT_TRUE(store->FindAgent("cam-1")->has_value());
}

TEST_F(PostgresConnectionTest, ATransactionCutByARestartIsUnavailableAndLeavesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartOwnCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  int runs = 0;
  const absl::Status st = store->Transaction([&]() -> absl::Status {
    ++runs;
    if (absl::Status put = store->PutAgent(Agent("cam-1")); !put.ok()) {
      return put;
    }
    if (absl::Status restart = own_cluster_->Restart(); !restart.ok()) {
      return restart;
    }
    return store->Audit({.actor = "admin", .action = "add"});
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_EQ(runs, 1);  // the session's loss is not a conflict: the caller decides
  // The session was reset by the failed statement: the next call works, and nothing of the
  // transaction was committed.
  absl::StatusOr<std::optional<AgentRecord>> found = store->FindAgent("cam-1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
  EXPECT_TRUE(store->RecentAudit(10)->empty());
}

TEST_F(PostgresConnectionTest, AReadOnlyDatabaseIsUnavailableForWrites) {
  ASSERT_NO_FATAL_FAILURE(UseSharedCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutAgent(Agent("cam-1")).ok());
  // What a primary demoted to a standby answers to a write (SQLSTATE 25006), here for new
  // sessions; then the store's session is cut, as a failover cuts it.
  absl::StatusOr<PgCluster*> cluster = PgCluster::Shared();
  ASSERT_TRUE(cluster.ok());
  const std::string dbname = conninfo_.substr(conninfo_.rfind('=') + 1);
  RunSql((*cluster)->conninfo(),
         ("ALTER DATABASE " + dbname + " SET default_transaction_read_only = on").c_str());
  RunSql((*cluster)->conninfo(),
         ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + dbname + "'")
             .c_str());
  // The reset session is read-only: the write is refused again, and reported as unavailable.
  EXPECT_EQ(store->PutAgent(Agent("cam-2")).code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<std::optional<AgentRecord>> found = store->FindAgent("cam-1");
  ASSERT_TRUE(found.ok()) << found.status();  // reads still work
  EXPECT_TRUE(found->has_value());
  // A manager starting against it cannot apply its migrations' bookkeeping: unavailable too.
  absl::StatusOr<std::unique_ptr<PostgresConnection>> fresh = PostgresConnection::Open(conninfo_);
  EXPECT_EQ(fresh.status().code(), absl::StatusCode::kUnavailable) << fresh.status();
}

TEST_F(PostgresConnectionTest, StoresTextItCannotHoldWithReplacementCharacters) {
  ASSERT_NO_FATAL_FAILURE(UseSharedCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutAgent(Agent("a")).ok());
  ASSERT_TRUE(store->PutAgent(Agent("b")).ok());
  // Invalid UTF-8 and a NUL in one agent's STATUS: the batch still lands, for every agent.
  using std::string_literals::operator""s;
  const std::string bad = "x\xff\xc3(y\0z\xed\xa0\x80"s;
  ASSERT_TRUE(store
                  ->RecordSeen({{.agent_id = "a", .last_seen_ms = 10, .status = bad},
                                {.agent_id = "b", .last_seen_ms = 20, .status = "fine \xc3\xa9"}})
                  .ok());
  EXPECT_EQ((*store->FindAgent("a"))->last_seen_ms, 10);
  EXPECT_EQ((*store->FindAgent("a"))->last_status,
            "x\xef\xbf\xbd\xef\xbf\xbd(y\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ((*store->FindAgent("b"))->last_status, "fine \xc3\xa9");
  ASSERT_TRUE(store->RecordStatus("b", "\0"s, 30).ok());
  EXPECT_EQ((*store->FindAgent("b"))->last_status, "\xef\xbf\xbd");
}

TEST_F(PostgresConnectionTest, ManagersStartingTogetherMigrateOnce) {
  ASSERT_NO_FATAL_FAILURE(UseSharedCluster());
  constexpr int kManagers = 6;
  std::atomic<int> opened{0};
  std::vector<std::string> errors(kManagers);
  std::vector<std::thread> threads;
  threads.reserve(kManagers);
  for (int i = 0; i < kManagers; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::unique_ptr<PostgresConnection>> store =
          PostgresConnection::Open(conninfo_);
      if (store.ok()) {
        ++opened;
      } else {
        errors[i] = store.status().ToString();
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(opened.load(), kManagers);
  for (const std::string& e : errors) {
    EXPECT_EQ(e, "");
  }
  std::unique_ptr<PostgresConnection> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), PostgresConnection::kSchemaVersion);
}

TEST_F(PostgresConnectionTest, RunsATransactionAgainWhenAnotherManagerChangedItsRows) {
  ASSERT_NO_FATAL_FAILURE(UseSharedCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  std::unique_ptr<PostgresConnection> other = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(store->PutAgent(Agent("cam-1")).ok());
  int runs = 0;
  const absl::Status st = store->Transaction([&]() -> absl::Status {
    ++runs;
    // The first statement fixes the snapshot...
    absl::StatusOr<std::optional<AgentRecord>> found = store->FindAgent("cam-1");
    if (!found.ok()) {
      return found.status();
    }
    if (runs == 1) {
      // ...then another manager changes the row and commits...
      if (absl::Status changed = other->RecordStatus("cam-1", "other", 5); !changed.ok()) {
        return changed;
      }
    }
    // ...so this write is a serialization failure the first time.
    return store->RecordStatus("cam-1", "mine", 6);
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(runs, 2);
  EXPECT_EQ((*store->FindAgent("cam-1"))->last_status, "mine");
}

TEST_F(PostgresConnectionTest, GivesUpOnAConflictThatRepeats) {
  ASSERT_NO_FATAL_FAILURE(UseSharedCluster());
  std::unique_ptr<PostgresConnection> store = Open();
  std::unique_ptr<PostgresConnection> other = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(store->PutAgent(Agent("cam-1")).ok());
  int runs = 0;
  const absl::Status st = store->Transaction([&]() -> absl::Status {
    ++runs;
    (void)store->FindAgent("cam-1");
    (void)other->RecordStatus("cam-1", "other", runs);
    return store->RecordStatus("cam-1", "mine", 100);
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted) << st;
  EXPECT_EQ(runs, 3);
  EXPECT_EQ((*store->FindAgent("cam-1"))->last_status, "other");
}

}  // namespace
}  // namespace camtunnel::manager
