// What only the SQLite backend has: an in-memory database, and files written by earlier
// releases (PRAGMA user_version) upgraded in place. The behaviour both backends share is tested
// on each in store_suite_test.cc.
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

TEST(SqliteConnection, AppliesEveryMigrationToAnInMemoryDatabase) {
  auto store = SqliteConnection::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteConnection::kSchemaVersion);
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

}  // namespace
}  // namespace camtunnel::manager
