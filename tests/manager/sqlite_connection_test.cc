// The manager's SQLite state: migrations, agents, assignments, audit, and survival across a
// reopen (a manager restart).
#include "manager/sqlite_connection.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

namespace camtunnel::manager {
namespace {

std::string TempDb() {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("camtunnel-store-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir + "/m.db";
}

AgentRecord Agent(std::string id) {
  AgentRecord r{.agent_id = std::move(id), .operator_id = "acme", .activated_at_ms = 1000};
  r.secret[0] = 42;
  return r;
}

TEST(SqliteConnection, AppliesEveryMigrationOnAFreshFile) {
  auto store = SqliteConnection::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteConnection::kSchemaVersion);
}

TEST(SqliteConnection, KeepsAgentsAcrossReopen) {
  const std::string path = TempDb();
  {
    auto store = SqliteConnection::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutAgent(Agent("cam-1")).ok());
    ASSERT_TRUE((*store)->RecordAssignment("cam-1", "https://gw1", 5).ok());
  }
  auto store = SqliteConnection::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto found = (*store)->FindAgent("cam-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->secret[0], 42);
  EXPECT_EQ((*found)->streamer_url, "https://gw1");
  EXPECT_EQ((*found)->operator_id, "acme");
}

TEST(SqliteConnection, RefusesASchemaNewerThanItKnows) {
  const std::string path = TempDb();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto store = SqliteConnection::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("newer"), std::string::npos);
}

TEST(SqliteConnection, CountsOnlyActiveAssignments) {
  auto store = SqliteConnection::Open(":memory:");
  ASSERT_TRUE(store.ok());
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE((*store)->PutAgent(Agent(id)).ok());
    ASSERT_TRUE((*store)->RecordAssignment(id, "https://gw1", 1).ok());
  }
  EXPECT_EQ((*(*store)->CountAssignedByStreamer())["https://gw1"], 3u);
  ASSERT_TRUE((*store)->SetState("b", AgentState::kDeactivated).ok());
  EXPECT_EQ((*(*store)->CountAssignedByStreamer())["https://gw1"], 2u);
  EXPECT_EQ((*store)->CountAssignedByStreamer()->count("https://gw2"), 0u);
}

TEST(SqliteConnection, RecordsStatusAndAudit) {
  auto store = SqliteConnection::Open(":memory:");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE((*store)->RecordStatus("cam-1", "streamer=x state=connected", 77).ok());
  ASSERT_TRUE((*store)
                  ->Audit({.at_ms = 1, .actor = "admin", .action = "restart", .subject = "cam-1"})
                  .ok());
  auto agents = (*store)->ListAgents({.limit = 10});
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->agents.size(), 1u);
  EXPECT_EQ(agents->agents[0].last_status, "streamer=x state=connected");
  EXPECT_EQ(agents->agents[0].last_seen_ms, 77);
  auto audit = (*store)->RecentAudit(10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].action, "restart");
}

TEST(SqliteConnection, UpgradesAVersionOneFileKeepingItsAgents) {
  const std::string path = TempDb();
  {
    // Schema 1 exactly as the first release wrote it (migration 1 of state_store.cc).
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string schema1 =
        "CREATE TABLE agents (agent_id TEXT PRIMARY KEY, secret BLOB NOT NULL, "
        "state TEXT NOT NULL, operator_id TEXT NOT NULL DEFAULT '', "
        "activated_at_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL "
        "DEFAULT 0, last_status TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE assignments (agent_id TEXT PRIMARY KEY, streamer_url "
        "TEXT NOT NULL, at_ms INTEGER NOT NULL);"
        "CREATE TABLE activations (id INTEGER PRIMARY KEY, serial TEXT, "
        "source TEXT, result TEXT, at_ms INTEGER);"
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, at_ms INTEGER, actor "
        "TEXT, action TEXT, subject TEXT, detail TEXT);"
        "INSERT INTO agents VALUES ('cam-1', x'" +
        std::string(64, '1') +
        "', 'active', 'acme', 5, 0, '');"
        "PRAGMA user_version = 1;";
    ASSERT_EQ(sqlite3_exec(db, schema1.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = SqliteConnection::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteConnection::kSchemaVersion);
  auto found = (*store)->FindAgent("cam-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->located_url, "");
  ASSERT_TRUE((*store)->RecordLocation("cam-1", "https://gw2").ok());
  EXPECT_EQ((*(*store)->FindAgent("cam-1"))->located_url, "https://gw2");
}

TEST(SqliteConnection, KeepsClaimsWithoutTheirTokens) {
  const std::string path = TempDb();
  {
    auto store = SqliteConnection::Open(path);
    ASSERT_TRUE(store.ok());
    ClaimRecord c{.serial = "sn-1", .operator_id = "globex", .created_at_ms = 9};
    c.token_salt[0] = 1;
    c.token_hash[0] = 2;
    ASSERT_TRUE((*store)->PutClaim(c).ok());
  }
  auto store = SqliteConnection::Open(path);
  ASSERT_TRUE(store.ok());
  auto c = (*store)->FindClaim("sn-1");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->operator_id, "globex");
  EXPECT_EQ((*c)->token_salt[0], 1);
  EXPECT_EQ((*c)->token_hash[0], 2);
  EXPECT_EQ((*store)->ListClaims("", 10)->size(), 1u);
  EXPECT_TRUE(*(*store)->DeleteClaim("sn-1"));
  EXPECT_FALSE(*(*store)->DeleteClaim("sn-1"));
  EXPECT_FALSE((*store)->FindClaim("sn-1")->has_value());
}

}  // namespace
}  // namespace camtunnel::manager
