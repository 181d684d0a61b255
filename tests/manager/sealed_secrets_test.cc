// Agents' secrets in the SQLite store with a sealer: the file holds no clear secret, rows of an
// older database (clear) still read, a row that does not open is an error naming the agent, and
// a key rotation ends with `reseal` and the old key removed.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "manager/secret_reseal.h"
#include "manager/secret_sealer.h"
#include "manager/sqlite_connection.h"

namespace camtunnel::manager {
namespace {

std::string TempDb() {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("camtunnel-sealed-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir + "/m.db";
}

SecretSealer Sealer(const std::vector<std::pair<uint8_t, uint8_t>>& id_and_fill) {
  std::vector<SecretSealer::KeyEntry> keys;
  for (auto [id, fill] : id_and_fill) {
    SecretSealer::KeyEntry k{.id = id};
    k.key.fill(fill);
    keys.push_back(k);
  }
  auto sealer = SecretSealer::FromKeys(std::move(keys));
  EXPECT_TRUE(sealer.ok());
  return std::move(*sealer);
}

AgentRecord Agent(const std::string& id, uint8_t seed) {
  AgentRecord r{.agent_id = id, .operator_id = "acme", .activated_at_ms = 1000};
  for (size_t i = 0; i < r.secret.size(); ++i) {
    r.secret[i] = static_cast<uint8_t>(size_t{seed} * 7 + i);
  }
  return r;
}

// The secret column as stored, read with sqlite3 directly.
std::vector<uint8_t> RawSecret(const std::string& path, const std::string& id) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(
      sqlite3_prepare_v2(db, "SELECT secret FROM agents WHERE agent_id = ?1", -1, &s, nullptr),
      SQLITE_OK);
  sqlite3_bind_text(s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<uint8_t> out;
  if (sqlite3_step(s) == SQLITE_ROW) {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s, 0));
    out.assign(p, p + sqlite3_column_bytes(s, 0));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

bool Contains(const std::vector<uint8_t>& haystack, const proto::AgentSecret& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

TEST(SealedSecrets, DatabaseHoldsNoClearSecret) {
  const std::string path = TempDb();
  SecretSealer sealer = Sealer({{1, 0xaa}});
  const AgentRecord agent = Agent("cam-1", 1);
  {
    auto store = SqliteConnection::Open(path, &sealer);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutAgent(agent).ok());
    auto found = (*store)->FindAgent("cam-1");
    ASSERT_TRUE(found.ok() && found->has_value());
    EXPECT_EQ((*found)->secret, agent.secret);
    auto page = (*store)->ListAgents({});
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->agents.size(), 1u);
    EXPECT_EQ(page->agents[0].secret, agent.secret);
  }
  const auto raw = RawSecret(path, "cam-1");
  EXPECT_EQ(raw.size(), SecretSealer::kSealedBytes);
  EXPECT_FALSE(Contains(raw, agent.secret));
  // Nor anywhere else in the file (WAL checkpointed at close).
  const auto file = [&] {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }();
  EXPECT_FALSE(Contains(file, agent.secret));
}

TEST(SealedSecrets, ClearRowsOfAnOlderDatabaseStillRead) {
  const std::string path = TempDb();
  const AgentRecord agent = Agent("cam-1", 2);
  {
    auto clear = SqliteConnection::Open(path, nullptr);
    ASSERT_TRUE(clear.ok());
    ASSERT_TRUE((*clear)->PutAgent(agent).ok());
  }
  ASSERT_EQ(RawSecret(path, "cam-1").size(), 32u);
  SecretSealer sealer = Sealer({{1, 0xaa}});
  auto store = SqliteConnection::Open(path, &sealer);
  ASSERT_TRUE(store.ok());
  auto found = (*store)->FindAgent("cam-1");
  ASSERT_TRUE(found.ok() && found->has_value()) << found.status();
  EXPECT_EQ((*found)->secret, agent.secret);
  EXPECT_EQ(sealer.opened_clear(), 1u);
}

TEST(SealedSecrets, RowThatDoesNotOpenIsAnErrorNamingTheAgent) {
  const std::string path = TempDb();
  SecretSealer sealer = Sealer({{1, 0xaa}});
  auto store = SqliteConnection::Open(path, &sealer);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutAgent(Agent("cam-1", 1)).ok());
  ASSERT_TRUE((*store)->PutAgent(Agent("cam-2", 2)).ok());
  {
    // cam-1's sealed secret copied into cam-2's row.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "UPDATE agents SET secret = (SELECT secret FROM agents WHERE "
                           "agent_id = 'cam-1') WHERE agent_id = 'cam-2'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto found = (*store)->FindAgent("cam-2");
  ASSERT_FALSE(found.ok());
  EXPECT_TRUE(absl::IsDataLoss(found.status()));
  EXPECT_NE(found.status().message().find("cam-2"), std::string_view::npos);
  auto page = (*store)->ListAgents({});
  EXPECT_TRUE(absl::IsDataLoss(page.status()));
  EXPECT_TRUE((*store)->FindAgent("cam-1").ok());

  // A manager without the key file cannot read a sealed row either.
  auto keyless = SqliteConnection::Open(path, nullptr);
  ASSERT_TRUE(keyless.ok());
  EXPECT_TRUE(absl::IsDataLoss((*keyless)->FindAgent("cam-1").status()));
}

TEST(SealedSecrets, RotationEndsWithResealAndTheOldKeyRemoved) {
  const std::string path = TempDb();
  std::vector<AgentRecord> agents;
  agents.reserve(5);
  for (int i = 0; i < 5; ++i) {
    agents.push_back(Agent("cam-" + std::to_string(i), static_cast<uint8_t>(i)));
  }
  {
    // Two rows from before sealing existed, three sealed under key 1.
    auto clear = SqliteConnection::Open(path, nullptr);
    ASSERT_TRUE(clear.ok());
    ASSERT_TRUE((*clear)->PutAgent(agents[0]).ok());
    ASSERT_TRUE((*clear)->PutAgent(agents[1]).ok());
    SecretSealer old_key = Sealer({{1, 0xaa}});
    auto sealed = SqliteConnection::Open(path, &old_key);
    ASSERT_TRUE(sealed.ok());
    for (int i = 2; i < 5; ++i) {
      ASSERT_TRUE((*sealed)->PutAgent(agents[i]).ok());
    }
    ASSERT_TRUE((*sealed)->RecordAssignment("cam-3", "https://gw1", 5).ok());
  }
  {
    // Key 2 added: managers restarted with both keys, then reseal, in batches of 2.
    SecretSealer both = Sealer({{1, 0xaa}, {2, 0xbb}});
    auto store = SqliteConnection::Open(path, &both);
    ASSERT_TRUE(store.ok());
    auto counts = ResealSecrets(**store, both, /*batch=*/2);
    ASSERT_TRUE(counts.ok()) << counts.status();
    EXPECT_EQ(counts->resealed, 5u);
    EXPECT_EQ(counts->clear, 2u);
    EXPECT_EQ(counts->older_key, 3u);
  }
  // Key 1 removed: everything still opens, assignment kept.
  SecretSealer new_only = Sealer({{2, 0xbb}});
  auto store = SqliteConnection::Open(path, &new_only);
  ASSERT_TRUE(store.ok());
  for (const AgentRecord& a : agents) {
    auto found = (*store)->FindAgent(a.agent_id);
    ASSERT_TRUE(found.ok() && found->has_value()) << a.agent_id << ": " << found.status();
    EXPECT_EQ((*found)->secret, a.secret);
    const auto raw = RawSecret(path, a.agent_id);
    ASSERT_EQ(raw.size(), SecretSealer::kSealedBytes);
    EXPECT_EQ(raw[1], 2);
  }
  EXPECT_EQ((**(*store)->FindAgent("cam-3")).streamer_url, "https://gw1");
  EXPECT_EQ(new_only.opened_clear(), 0u);
}

}  // namespace
}  // namespace camtunnel::manager
