// Every storage backend behind StoreConnection, held to the same behaviour: each test runs once
// on SQLite (a fresh file) and once on PostgreSQL (a fresh database in the throwaway cluster this
// process starts on first use, PgCluster::Shared; skipped when PostgreSQL 15 is not installed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "manager/postgres_connection.h"
#include "manager/secret_sealer.h"
#include "manager/sqlite_connection.h"
#include "manager/store_connection.h"
#include "tests/support/pg_cluster.h"

namespace camtunnel::manager {
namespace {

using ::camtunnel::test_support::PgCluster;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr const char* kSqlite = "sqlite";
constexpr const char* kPostgres = "postgresql";

AgentRecord Agent(std::string id, std::string operator_id = "acme") {
  AgentRecord r{
      .agent_id = std::move(id), .operator_id = std::move(operator_id), .activated_at_ms = 1000};
  for (size_t i = 0; i < r.secret.size(); ++i) {
    r.secret[i] = static_cast<uint8_t>(255 - i * 7);  // zeros and high bytes both round-trip
  }
  r.secret[3] = 0;
  return r;
}

std::vector<std::string> Ids(const std::vector<AgentRecord>& agents) {
  std::vector<std::string> ids;
  ids.reserve(agents.size());
  for (const AgentRecord& a : agents) {
    ids.push_back(a.agent_id);
  }
  return ids;
}

class StoreSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == kPostgres) {
      if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
        GTEST_SKIP() << why;
      }
      absl::StatusOr<std::string> conninfo = PgCluster::SharedDatabase();
      ASSERT_TRUE(conninfo.ok()) << conninfo.status();
      spec_ = *conninfo;
    } else {
      dir_ = std::filesystem::temp_directory_path() /
             absl::StrCat("camtunnel-store-", getpid(), "-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
      spec_ = absl::StrCat("sqlite:", (dir_ / "state.db").string());
    }
    Reopen();
  }

  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) {
      std::filesystem::remove_all(dir_);
    }
  }

  void Reopen(const SecretSealer* sealer = nullptr) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<StoreConnection>> opened = OpenStoreConnection(spec_, sealer);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }

  int LatestSchema() const {
    return GetParam() == kPostgres ? PostgresConnection::kSchemaVersion
                                   : SqliteConnection::kSchemaVersion;
  }

  // Writes `version` into the database's schema version, as a newer manager would have.
  void ForgeSchemaVersion(int version) {
    store_.reset();
    if (GetParam() == kPostgres) {
      PGconn* conn = PQconnectdb(spec_.c_str());
      ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
      const std::string v = std::to_string(version);
      const char* values[] = {v.c_str()};
      PGresult* r = PQexecParams(conn, "UPDATE schema_version SET version = $1::integer", 1,
                                 nullptr, values, nullptr, nullptr, 0);
      EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
      PQclear(r);
      PQfinish(conn);
    } else {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open((dir_ / "state.db").c_str(), &db), SQLITE_OK);
      const std::string sql = absl::StrCat("PRAGMA user_version = ", version);
      EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_close(db);
    }
  }

  void PutAgents(const std::vector<AgentRecord>& agents) {
    for (const AgentRecord& a : agents) {
      ASSERT_TRUE(store_->PutAgent(a).ok()) << a.agent_id;
    }
  }

  AgentRecord Find(std::string_view id) {
    absl::StatusOr<std::optional<AgentRecord>> found = store_->FindAgent(id);
    EXPECT_TRUE(found.ok()) << found.status();
    EXPECT_TRUE(found.ok() && found->has_value()) << id;
    return found.ok() && found->has_value() ? **found : AgentRecord{};
  }

  std::vector<std::string> ListIds(const AgentQuery& query) {
    absl::StatusOr<AgentPage> page = store_->ListAgents(query);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? Ids(page->agents) : std::vector<std::string>{};
  }

  uint64_t Count(const AgentQuery& query) {
    absl::StatusOr<uint64_t> n = store_->CountAgents(query);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.value_or(0);
  }

  std::filesystem::path dir_;
  std::string spec_;
  std::unique_ptr<StoreConnection> store_;
};

TEST_P(StoreSuite, AppliesEveryMigrationOnAFreshDatabase) {
  EXPECT_EQ(store_->backend(), GetParam());
  EXPECT_TRUE(store_->Ping().ok());
  EXPECT_EQ(store_->schema_version(), LatestSchema());
  // Opening again applies nothing more and keeps the version.
  Reopen();
  EXPECT_EQ(store_->schema_version(), LatestSchema());
}

TEST_P(StoreSuite, RefusesASchemaNewerThanItKnows) {
  ForgeSchemaVersion(LatestSchema() + 1);
  absl::StatusOr<std::unique_ptr<StoreConnection>> opened = OpenStoreConnection(spec_, nullptr);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("newer"), std::string::npos) << opened.status();
}

TEST_P(StoreSuite, ReopenKeepsEveryKindOfRow) {
  ASSERT_TRUE(store_->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE(store_->RecordAssignment("cam-1", "https://gw1", 5).ok());
  ASSERT_TRUE(store_->RecordLocation("cam-1", "https://gw2").ok());
  ClaimRecord claim{.serial = "sn-1", .operator_id = "globex", .created_at_ms = 9};
  claim.token_salt[0] = 1;
  claim.token_hash[31] = 2;
  ASSERT_TRUE(store_->PutClaim(claim).ok());
  ASSERT_TRUE(store_->Audit({.at_ms = 3, .actor = "admin", .action = "restart"}).ok());
  ASSERT_TRUE(store_->RecordActivation({.serial = "sn-1", .result = "ok", .at_ms = 4}).ok());

  Reopen();
  const AgentRecord found = Find("cam-1");
  EXPECT_EQ(found.secret, Agent("cam-1").secret);
  EXPECT_EQ(found.operator_id, "acme");
  EXPECT_EQ(found.streamer_url, "https://gw1");
  EXPECT_EQ(found.located_url, "https://gw2");
  absl::StatusOr<std::optional<ClaimRecord>> c = store_->FindClaim("sn-1");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->operator_id, "globex");
  EXPECT_EQ((*c)->token_salt, claim.token_salt);
  EXPECT_EQ((*c)->token_hash, claim.token_hash);
  EXPECT_EQ((*c)->created_at_ms, 9);
  ASSERT_EQ(store_->RecentAudit(10)->size(), 1u);
  EXPECT_EQ((*store_->RecentAudit(10))[0].action, "restart");
  ASSERT_EQ(store_->ListActivations(0, 10)->size(), 1u);
  EXPECT_EQ((*store_->ListActivations(0, 10))[0].serial, "sn-1");
}

TEST_P(StoreSuite, FindsAnAgentWithEveryField) {
  AgentRecord a = Agent("cam-1", "globex");
  a.state = AgentState::kActive;
  a.activated_at_ms = 1'700'000'000'123;
  a.last_seen_ms = 1'700'000'000'456;
  a.last_status = "state=connected streamer=\"gw\" \\ ünïcode";
  ASSERT_TRUE(store_->PutAgent(a).ok());
  const AgentRecord found = Find("cam-1");
  EXPECT_EQ(found.agent_id, "cam-1");
  EXPECT_EQ(found.secret, a.secret);
  EXPECT_EQ(found.state, AgentState::kActive);
  EXPECT_EQ(found.operator_id, "globex");
  EXPECT_EQ(found.activated_at_ms, 1'700'000'000'123);
  EXPECT_EQ(found.last_seen_ms, 1'700'000'000'456);
  EXPECT_EQ(found.last_status, a.last_status);
  EXPECT_EQ(found.streamer_url, "");
  EXPECT_EQ(found.located_url, "");
  absl::StatusOr<std::optional<AgentRecord>> missing = store_->FindAgent("cam-2");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreSuite, SealsSecretsAtRest) {
  absl::StatusOr<SecretSealer> sealer = SecretSealer::FromKeys({{.id = 7, .key = {1, 2, 3}}});
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  Reopen(&*sealer);
  ASSERT_TRUE(store_->PutAgent(Agent("cam-1")).ok());
  EXPECT_EQ(Find("cam-1").secret, Agent("cam-1").secret);
  absl::StatusOr<AgentPage> page = store_->ListAgents({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->agents.size(), 1u);
  EXPECT_EQ(page->agents[0].secret, Agent("cam-1").secret);
  // Without the key the stored value does not open: an error, never a zero secret.
  Reopen(nullptr);
  absl::StatusOr<std::optional<AgentRecord>> found = store_->FindAgent("cam-1");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kDataLoss) << found.status();
  EXPECT_EQ(store_->ListAgents({}).status().code(), absl::StatusCode::kDataLoss);
  store_.reset();  // before the sealer it uses
}

TEST_P(StoreSuite, PutAgentReplacesTheAgentButKeepsItsAssignmentAndLocation) {
  ASSERT_TRUE(store_->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE(store_->RecordAssignment("cam-1", "https://gw1", 5).ok());
  ASSERT_TRUE(store_->RecordLocation("cam-1", "https://gw2").ok());
  AgentRecord again = Agent("cam-1", "globex");
  again.secret.fill(7);
  again.activated_at_ms = 2000;
  ASSERT_TRUE(store_->PutAgent(again).ok());
  const AgentRecord found = Find("cam-1");
  EXPECT_EQ(found.secret, again.secret);
  EXPECT_EQ(found.operator_id, "globex");
  EXPECT_EQ(found.activated_at_ms, 2000);
  EXPECT_EQ(found.streamer_url, "https://gw1");
  EXPECT_EQ(found.located_url, "https://gw2");
  EXPECT_EQ(Count({}), 1u);
}

TEST_P(StoreSuite, DeactivationDropsTheAssignment) {
  ASSERT_TRUE(store_->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE(store_->RecordAssignment("cam-1", "https://gw1", 5).ok());
  ASSERT_TRUE(store_->SetState("cam-1", AgentState::kDeactivated).ok());
  AgentRecord found = Find("cam-1");
  EXPECT_EQ(found.state, AgentState::kDeactivated);
  EXPECT_EQ(found.streamer_url, "");
  // Reactivating does not bring the old assignment back.
  ASSERT_TRUE(store_->SetState("cam-1", AgentState::kActive).ok());
  found = Find("cam-1");
  EXPECT_EQ(found.state, AgentState::kActive);
  EXPECT_EQ(found.streamer_url, "");
  // An unknown agent is no error and creates nothing.
  EXPECT_TRUE(store_->SetState("cam-9", AgentState::kDeactivated).ok());
  EXPECT_FALSE(store_->FindAgent("cam-9")->has_value());
}

TEST_P(StoreSuite, RecordsStatusAndLastSeen) {
  ASSERT_TRUE(store_->PutAgent(Agent("cam-1")).ok());
  ASSERT_TRUE(store_->RecordStatus("cam-1", "streamer=x state=connected", 77).ok());
  const AgentRecord found = Find("cam-1");
  EXPECT_EQ(found.last_status, "streamer=x state=connected");
  EXPECT_EQ(found.last_seen_ms, 77);
}

TEST_P(StoreSuite, RecordSeenWritesABatch) {
  PutAgents({Agent("a"), Agent("b"), Agent("c,\"odd\" {id}\\")});
  ASSERT_TRUE(store_->RecordStatus("b", "kept", 10).ok());
  ASSERT_TRUE(store_
                  ->RecordSeen({
                      {.agent_id = "a", .last_seen_ms = 100, .status = "s=1"},
                      {.agent_id = "b", .last_seen_ms = 200, .status = ""},
                      {.agent_id = "c,\"odd\" {id}\\", .last_seen_ms = 300, .status = "q\"{,}\\"},
                      {.agent_id = "unknown", .last_seen_ms = 400, .status = "x"},
                  })
                  .ok());
  EXPECT_EQ(Find("a").last_seen_ms, 100);
  EXPECT_EQ(Find("a").last_status, "s=1");
  EXPECT_EQ(Find("b").last_seen_ms, 200);
  EXPECT_EQ(Find("b").last_status, "kept");  // an empty status leaves the stored one
  EXPECT_EQ(Find("c,\"odd\" {id}\\").last_seen_ms, 300);
  EXPECT_EQ(Find("c,\"odd\" {id}\\").last_status, "q\"{,}\\");
  EXPECT_FALSE(store_->FindAgent("unknown")->has_value());
  EXPECT_TRUE(store_->RecordSeen({}).ok());
}

TEST_P(StoreSuite, RecordSeenNeverMovesLastSeenBackAndKeepsTheLastStatus) {
  PutAgents({Agent("a")});
  ASSERT_TRUE(store_->RecordSeen({{.agent_id = "a", .last_seen_ms = 500, .status = "first"}}).ok());
  ASSERT_TRUE(store_
                  ->RecordSeen({
                      {.agent_id = "a", .last_seen_ms = 400, .status = "second"},
                      {.agent_id = "a", .last_seen_ms = 450, .status = "third"},
                      {.agent_id = "a", .last_seen_ms = 420, .status = ""},
                  })
                  .ok());
  EXPECT_EQ(Find("a").last_seen_ms, 500);
  EXPECT_EQ(Find("a").last_status, "third");
  ASSERT_TRUE(store_
                  ->RecordSeen({
                      {.agent_id = "a", .last_seen_ms = 700, .status = ""},
                      {.agent_id = "a", .last_seen_ms = 600, .status = "fourth"},
                  })
                  .ok());
  EXPECT_EQ(Find("a").last_seen_ms, 700);
  EXPECT_EQ(Find("a").last_status, "fourth");
}

TEST_P(StoreSuite, RecordAssignmentReplacesThePreviousOne) {
  PutAgents({Agent("cam-1")});
  ASSERT_TRUE(store_->RecordAssignment("cam-1", "https://gw1", 5).ok());
  ASSERT_TRUE(store_->RecordAssignment("cam-1", "https://gw2", 6).ok());
  EXPECT_EQ(Find("cam-1").streamer_url, "https://gw2");
  EXPECT_THAT(*store_->CountAssignedByStreamer(), ElementsAre(Pair("https://gw2", 1u)));
}

TEST_P(StoreSuite, ListAgentsPagesInBytewiseIdOrder) {
  // Upper case before lower case and "cam-10" before "cam-9", as bytes compare (not a locale).
  const std::vector<std::string> ids = {"cam-9", "Zeta", "cam-10", "alpha", "cam-1", "Beta", "b"};
  for (const std::string& id : ids) {
    ASSERT_TRUE(store_->PutAgent(Agent(id)).ok());
  }
  std::vector<std::string> seen;
  std::vector<size_t> page_sizes;
  AgentQuery query{.limit = 3};
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<AgentPage> page = store_->ListAgents(query);
    ASSERT_TRUE(page.ok()) << page.status();
    page_sizes.push_back(page->agents.size());
    for (const AgentRecord& a : page->agents) {
      seen.push_back(a.agent_id);
    }
    if (page->next.empty()) {
      break;
    }
    EXPECT_EQ(page->next, page->agents.back().agent_id);
    query.after = page->next;
  }
  EXPECT_THAT(seen, ElementsAre("Beta", "Zeta", "alpha", "b", "cam-1", "cam-10", "cam-9"));
  EXPECT_THAT(page_sizes, ElementsAre(3u, 3u, 1u));
}

TEST_P(StoreSuite, ListAgentsFullLastPageHasNoNextCursor) {
  PutAgents({Agent("a"), Agent("b"), Agent("c"), Agent("d")});
  absl::StatusOr<AgentPage> first = store_->ListAgents({.limit = 2});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->next, "b");
  absl::StatusOr<AgentPage> second = store_->ListAgents({.after = "b", .limit = 2});
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(Ids(second->agents), ElementsAre("c", "d"));
  EXPECT_EQ(second->next, "");
  absl::StatusOr<AgentPage> none = store_->ListAgents({.after = "d", .limit = 2});
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(none->agents, IsEmpty());
  EXPECT_EQ(none->next, "");
}

TEST_P(StoreSuite, ListAgentsFiltersByStateStreamerOperatorAndLastSeen) {
  PutAgents({Agent("a", "acme"), Agent("b", "acme"), Agent("c", "globex"), Agent("d", "globex"),
             Agent("e", "acme")});
  ASSERT_TRUE(store_->RecordAssignment("a", "https://gw1", 1).ok());
  ASSERT_TRUE(store_->RecordAssignment("b", "https://gw2", 1).ok());
  ASSERT_TRUE(store_->RecordAssignment("c", "https://gw1", 1).ok());
  ASSERT_TRUE(store_->RecordAssignment("e", "https://gw1", 1).ok());
  ASSERT_TRUE(store_->SetState("d", AgentState::kDeactivated).ok());
  ASSERT_TRUE(store_->SetState("e", AgentState::kDeactivated).ok());  // drops e's assignment
  ASSERT_TRUE(store_
                  ->RecordSeen({{.agent_id = "a", .last_seen_ms = 100},
                                {.agent_id = "b", .last_seen_ms = 200},
                                {.agent_id = "c", .last_seen_ms = 300}})
                  .ok());

  EXPECT_THAT(ListIds({}), ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_THAT(ListIds({.state = AgentState::kActive}), ElementsAre("a", "b", "c"));
  EXPECT_THAT(ListIds({.state = AgentState::kDeactivated}), ElementsAre("d", "e"));
  EXPECT_THAT(ListIds({.streamer_url = "https://gw1"}), ElementsAre("a", "c"));
  EXPECT_THAT(ListIds({.streamer_url = "https://gw3"}), IsEmpty());
  EXPECT_THAT(ListIds({.operator_id = "globex"}), ElementsAre("c", "d"));
  EXPECT_THAT(ListIds({.seen_since_ms = 200}), ElementsAre("b", "c"));
  EXPECT_THAT(ListIds({.seen_before_ms = 200}), ElementsAre("a", "d", "e"));  // d, e: never
  EXPECT_THAT(ListIds({.seen_since_ms = 100, .seen_before_ms = 300}), ElementsAre("a", "b"));
  EXPECT_THAT(ListIds({.streamer_url = "https://gw1", .operator_id = "acme"}), ElementsAre("a"));
  EXPECT_THAT(ListIds({.state = AgentState::kActive, .seen_since_ms = 150}), ElementsAre("b", "c"));
  // A filter and the cursor together.
  EXPECT_THAT(ListIds({.after = "a", .limit = 1, .operator_id = "acme"}), ElementsAre("b"));
}

TEST_P(StoreSuite, CountAgentsAppliesTheFiltersButNotTheCursorOrLimit) {
  PutAgents({Agent("a", "acme"), Agent("b", "acme"), Agent("c", "globex")});
  ASSERT_TRUE(store_->RecordAssignment("b", "https://gw1", 1).ok());
  ASSERT_TRUE(store_->SetState("c", AgentState::kDeactivated).ok());
  ASSERT_TRUE(store_->RecordSeen({{.agent_id = "a", .last_seen_ms = 50}}).ok());
  EXPECT_EQ(Count({}), 3u);
  EXPECT_EQ(Count({.after = "b", .limit = 1}), 3u);
  EXPECT_EQ(Count({.state = AgentState::kActive}), 2u);
  EXPECT_EQ(Count({.state = AgentState::kDeactivated}), 1u);
  EXPECT_EQ(Count({.streamer_url = "https://gw1"}), 1u);
  EXPECT_EQ(Count({.operator_id = "acme"}), 2u);
  EXPECT_EQ(Count({.seen_since_ms = 50}), 1u);
  EXPECT_EQ(Count({.seen_before_ms = 50}), 2u);
  EXPECT_EQ(Count({.operator_id = "nobody"}), 0u);
}

TEST_P(StoreSuite, CountsOnlyActiveAgentsAssignedToEachStreamer) {
  PutAgents({Agent("a"), Agent("b"), Agent("c"), Agent("d")});
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(store_->RecordAssignment(id, "https://gw1", 1).ok());
  }
  ASSERT_TRUE(store_->RecordAssignment("d", "https://gw2", 1).ok());
  EXPECT_THAT(*store_->CountAssignedByStreamer(),
              ElementsAre(Pair("https://gw1", 3u), Pair("https://gw2", 1u)));
  ASSERT_TRUE(store_->SetState("b", AgentState::kDeactivated).ok());
  ASSERT_TRUE(store_->SetState("d", AgentState::kDeactivated).ok());
  EXPECT_THAT(*store_->CountAssignedByStreamer(), ElementsAre(Pair("https://gw1", 2u)));
}

TEST_P(StoreSuite, ListsDeactivatedAgentsOnly) {
  PutAgents({Agent("a"), Agent("b"), Agent("c")});
  EXPECT_THAT(*store_->ListDeactivated(), IsEmpty());
  ASSERT_TRUE(store_->SetState("c", AgentState::kDeactivated).ok());
  ASSERT_TRUE(store_->SetState("a", AgentState::kDeactivated).ok());
  EXPECT_THAT(*store_->ListDeactivated(), UnorderedElementsAre("a", "c"));
  AgentRecord reactivated = Agent("a");
  ASSERT_TRUE(store_->PutAgent(reactivated).ok());  // a fresh activation
  EXPECT_THAT(*store_->ListDeactivated(), ElementsAre("c"));
}

TEST_P(StoreSuite, KeepsClaimsAndDeletesThemOnce) {
  ClaimRecord c{.serial = "sn-1", .operator_id = "globex", .created_at_ms = 9};
  c.token_salt.fill(0xab);
  c.token_hash.fill(0);
  c.token_hash[31] = 0xff;
  ASSERT_TRUE(store_->PutClaim(c).ok());
  absl::StatusOr<std::optional<ClaimRecord>> found = store_->FindClaim("sn-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->operator_id, "globex");
  EXPECT_EQ((*found)->token_salt, c.token_salt);
  EXPECT_EQ((*found)->token_hash, c.token_hash);
  // A second claim on the serial replaces the first.
  c.operator_id = "initech";
  c.created_at_ms = 10;
  ASSERT_TRUE(store_->PutClaim(c).ok());
  EXPECT_EQ((*store_->FindClaim("sn-1"))->operator_id, "initech");
  EXPECT_EQ((*store_->FindClaim("sn-1"))->created_at_ms, 10);

  EXPECT_TRUE(*store_->DeleteClaim("sn-1"));
  EXPECT_FALSE(*store_->DeleteClaim("sn-1"));
  EXPECT_FALSE(store_->FindClaim("sn-1")->has_value());
}

TEST_P(StoreSuite, ListsClaimsInSerialOrderAfterACursor) {
  for (const char* serial : {"sn-3", "sn-1", "SN-0", "sn-2"}) {
    ASSERT_TRUE(store_->PutClaim({.serial = serial, .operator_id = "acme"}).ok());
  }
  auto serials = [](const std::vector<ClaimRecord>& claims) {
    std::vector<std::string> out;
    out.reserve(claims.size());
    for (const ClaimRecord& c : claims) {
      out.push_back(c.serial);
    }
    return out;
  };
  EXPECT_THAT(serials(*store_->ListClaims("", 2)), ElementsAre("SN-0", "sn-1"));
  EXPECT_THAT(serials(*store_->ListClaims("sn-1", 2)), ElementsAre("sn-2", "sn-3"));
  EXPECT_THAT(serials(*store_->ListClaims("sn-3", 2)), IsEmpty());
  EXPECT_THAT(serials(*store_->ListClaims("", 10)), ElementsAre("SN-0", "sn-1", "sn-2", "sn-3"));
}

TEST_P(StoreSuite, EachLinkClaimRaisesTheEpochAndOnlyTheHolderReleasesIt) {
  EXPECT_EQ(*store_->ClaimLink("a", "m1", 1), 1);
  EXPECT_EQ(store_->FindLink("a")->value().manager_id, "m1");
  EXPECT_EQ(*store_->ClaimLink("a", "m2", 2), 2);       // taken over
  ASSERT_TRUE(store_->ReleaseLink("a", "m1", 1).ok());  // the stale holder: no effect
  std::optional<LinkClaim> link = *store_->FindLink("a");
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->manager_id, "m2");
  EXPECT_EQ(link->epoch, 2);
  ASSERT_TRUE(store_->ReleaseLink("a", "m2", 2).ok());
  EXPECT_FALSE(store_->FindLink("a")->has_value());
  // The epoch outlives the claim.
  EXPECT_EQ(*store_->ClaimLink("a", "m1", 3), 3);
  EXPECT_EQ(*store_->ClaimLink("b", "m1", 3), 1);
}

TEST_P(StoreSuite, CommandsAreTakenOnlyByTheLinkHolderAndEndOnce) {
  absl::StatusOr<int64_t> first = store_->EnqueueCommand({.agent_id = "a",
                                                          .kind = "switch",
                                                          .argument = "https://gw2",
                                                          .requested_by = "admin",
                                                          .created_at_ms = 10,
                                                          .deadline_ms = 1000});
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<int64_t> second = store_->EnqueueCommand(
      {.agent_id = "a", .kind = "restart", .created_at_ms = 11, .deadline_ms = 500});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(*second, *first);
  std::optional<CommandRecord> queued = *store_->FindCommand(*first);
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(queued->state, CommandState::kQueued);
  EXPECT_EQ(queued->kind, "switch");
  EXPECT_EQ(queued->argument, "https://gw2");
  EXPECT_EQ(queued->requested_by, "admin");
  EXPECT_EQ(queued->created_at_ms, 10);
  EXPECT_EQ(queued->deadline_ms, 1000);
  EXPECT_EQ(queued->updated_at_ms, 10);

  EXPECT_FALSE(store_->TakeCommand(*first, "m1", 1, 20)->has_value());  // nobody holds the link
  const int64_t epoch = *store_->ClaimLink("a", "m1", 15);
  EXPECT_FALSE(store_->TakeCommand(*first, "m1", epoch + 1, 20)->has_value());  // stale epoch
  EXPECT_FALSE(store_->TakeCommand(*first, "m2", epoch, 20)->has_value());      // not the holder
  std::optional<CommandRecord> sent = *store_->TakeCommand(*first, "m1", epoch, 20);
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->state, CommandState::kSent);
  EXPECT_EQ(sent->manager_id, "m1");
  EXPECT_EQ(sent->epoch, epoch);
  EXPECT_EQ(sent->updated_at_ms, 20);

  auto ids = [](const std::vector<CommandRecord>& commands) {
    std::vector<int64_t> out;
    out.reserve(commands.size());
    for (const CommandRecord& c : commands) {
      out.push_back(c.id);
    }
    return out;
  };
  EXPECT_THAT(ids(*store_->PendingCommands("a", "", 20)), ElementsAre(*first, *second));
  EXPECT_THAT(ids(*store_->PendingCommands("", "m1", 20)), ElementsAre(*first, *second));
  EXPECT_THAT(ids(*store_->PendingCommands("", "m2", 20)), IsEmpty());
  EXPECT_THAT(ids(*store_->PendingCommands("a", "", 600)), ElementsAre(*first));  // past 500

  EXPECT_TRUE(*store_->FinishCommand(*first, CommandState::kAcked, "done", 30));
  EXPECT_FALSE(*store_->FinishCommand(*first, CommandState::kFailed, "late", 31));
  std::optional<CommandRecord> acked = *store_->FindCommand(*first);
  ASSERT_TRUE(acked.has_value());
  EXPECT_EQ(acked->state, CommandState::kAcked);
  EXPECT_EQ(acked->outcome, "done");
  EXPECT_FALSE(store_->TakeCommand(*first, "m1", epoch, 40)->has_value());  // over

  EXPECT_EQ(*store_->ExpireCommands(600), 1u);
  std::optional<CommandRecord> expired = *store_->FindCommand(*second);
  ASSERT_TRUE(expired.has_value());
  EXPECT_EQ(expired->state, CommandState::kExpired);
  EXPECT_EQ(expired->outcome, "agent not linked before the deadline");
  EXPECT_EQ(*store_->ExpireCommands(600), 0u);
  EXPECT_THAT(*store_->PendingCommands("a", "", 20), IsEmpty());
  EXPECT_FALSE(store_->FindCommand(*second + 100)->has_value());
}

// Agents keep the highest command id they acted on: ids only rise, and a floor (a migrated
// fleet's) lifts every id to come above it, never lowers one.
TEST_P(StoreSuite, CommandIdsOnlyRiseAndTakeAFloor) {
  EXPECT_EQ(*store_->LastCommandId(), 0);
  auto first = store_->EnqueueCommand({.agent_id = "sn-1", .kind = "restart", .deadline_ms = 1});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*store_->LastCommandId(), *first);
  ASSERT_TRUE(store_->KeepCommandIdsAbove(*first + 1000).ok());
  auto next = store_->EnqueueCommand({.agent_id = "sn-1", .kind = "restart", .deadline_ms = 1});
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, *first + 1000);
  ASSERT_TRUE(store_->KeepCommandIdsAbove(5).ok());  // below: nothing changes
  EXPECT_EQ(*store_->LastCommandId(), *next);
}

TEST_P(StoreSuite, ListsActivationsOldestFirstAfterAnId) {
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(store_
                    ->RecordActivation({.serial = absl::StrCat("sn-", i),
                                        .source = "10.0.0.1",
                                        .result = i % 2 == 0 ? "denied" : "ok",
                                        .at_ms = int64_t{100} * i})
                    .ok());
  }
  absl::StatusOr<std::vector<ActivationEntry>> first = store_->ListActivations(0, 3);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].serial, "sn-1");
  EXPECT_EQ((*first)[0].source, "10.0.0.1");
  EXPECT_EQ((*first)[0].result, "ok");
  EXPECT_EQ((*first)[0].at_ms, 100);
  EXPECT_EQ((*first)[1].result, "denied");
  EXPECT_LT((*first)[0].id, (*first)[1].id);
  EXPECT_LT((*first)[1].id, (*first)[2].id);
  absl::StatusOr<std::vector<ActivationEntry>> rest = store_->ListActivations((*first)[2].id, 10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].serial, "sn-4");
  EXPECT_EQ((*rest)[1].serial, "sn-5");
  EXPECT_THAT(*store_->ListActivations((*rest)[1].id, 10), IsEmpty());
}

TEST_P(StoreSuite, ListsAuditNewestFirstOrOldestFirstAfterAnId) {
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(store_
                    ->Audit({.at_ms = i,
                             .actor = "admin",
                             .action = absl::StrCat("action-", i),
                             .subject = "cam-1",
                             .detail = "why"})
                    .ok());
  }
  absl::StatusOr<std::vector<AuditEntry>> recent = store_->RecentAudit(2);
  ASSERT_TRUE(recent.ok()) << recent.status();
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].action, "action-4");
  EXPECT_EQ((*recent)[1].action, "action-3");
  EXPECT_EQ((*recent)[0].actor, "admin");
  EXPECT_EQ((*recent)[0].subject, "cam-1");
  EXPECT_EQ((*recent)[0].detail, "why");
  EXPECT_EQ((*recent)[0].at_ms, 4);
  EXPECT_GT((*recent)[0].id, (*recent)[1].id);

  absl::StatusOr<std::vector<AuditEntry>> oldest = store_->ListAudit(0, 3);
  ASSERT_TRUE(oldest.ok());
  ASSERT_EQ(oldest->size(), 3u);
  EXPECT_EQ((*oldest)[0].action, "action-1");
  EXPECT_EQ((*oldest)[2].action, "action-3");
  absl::StatusOr<std::vector<AuditEntry>> rest = store_->ListAudit((*oldest)[2].id, 3);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].action, "action-4");
  EXPECT_EQ((*rest)[0].id, (*recent)[0].id);
}

TEST_P(StoreSuite, LeaseGoesToOneHolderAndPassesOnOnlyOnceExpired) {
  absl::StatusOr<Lease> a = store_->AcquireLease("leader", "manager-a", 60000);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->held);
  EXPECT_EQ(a->holder, "manager-a");
  EXPECT_EQ(a->term, 1);
  // Another manager is told who holds it, and for about how long.
  absl::StatusOr<Lease> b = store_->AcquireLease("leader", "manager-b", 60000);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->held);
  EXPECT_EQ(b->holder, "manager-a");
  EXPECT_EQ(b->term, 1);
  EXPECT_GT(b->expires_in_ms, 50000);
  // A renewal keeps the term.
  absl::StatusOr<Lease> renewed = store_->AcquireLease("leader", "manager-a", 60000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_TRUE(renewed->held);
  EXPECT_EQ(renewed->term, 1);
  // Let go (a lifetime of zero): the next asker takes it with the next term, and the old holder
  // cannot have it back while the new one renews.
  ASSERT_TRUE(store_->AcquireLease("leader", "manager-a", 0).ok());
  b = store_->AcquireLease("leader", "manager-b", 60000);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->held);
  EXPECT_EQ(b->term, 2);
  a = store_->AcquireLease("leader", "manager-a", 60000);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->held);
  EXPECT_EQ(a->holder, "manager-b");
  // Leases are independent by name.
  absl::StatusOr<Lease> other = store_->AcquireLease("other", "manager-a", 60000);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->held);
}

TEST_P(StoreSuite, LeaseCheckFencesAStaleTermInsideTheTransaction) {
  ASSERT_TRUE(store_->AcquireLease("leader", "manager-a", 60000)->held);
  EXPECT_TRUE(store_->CheckLease("leader", "manager-a", 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CheckLease("leader", "manager-a", 2)));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CheckLease("leader", "manager-b", 1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CheckLease("missing", "manager-a", 1)));
  // Manager A was stopped past its lease; B took it. A's fenced write does nothing.
  ASSERT_TRUE(store_->AcquireLease("leader", "manager-a", 1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CheckLease("leader", "manager-a", 1)));
  ASSERT_TRUE(store_->AcquireLease("leader", "manager-b", 60000)->held);
  absl::Status stale = store_->Transaction([&]() -> absl::Status {
    if (absl::Status fence = store_->CheckLease("leader", "manager-a", 1); !fence.ok()) {
      return fence;
    }
    return store_->SetStreamerHealth("https://gw-1", false, 100);
  });
  EXPECT_TRUE(absl::IsFailedPrecondition(stale)) << stale;
  EXPECT_THAT(*store_->ListStreamerHealth(), IsEmpty());
  absl::Status current = store_->Transaction([&]() -> absl::Status {
    if (absl::Status fence = store_->CheckLease("leader", "manager-b", 2); !fence.ok()) {
      return fence;
    }
    return store_->SetStreamerHealth("https://gw-1", false, 100);
  });
  EXPECT_TRUE(current.ok()) << current;
  EXPECT_THAT(*store_->ListStreamerHealth(), ElementsAre(Pair("https://gw-1", false)));
}

TEST_P(StoreSuite, StreamerHealthIsOneRowPerStreamer) {
  ASSERT_TRUE(store_->SetStreamerHealth("https://gw-1", false, 100).ok());
  ASSERT_TRUE(store_->SetStreamerHealth("https://gw-2", true, 100).ok());
  ASSERT_TRUE(store_->SetStreamerHealth("https://gw-1", true, 200).ok());
  EXPECT_THAT(*store_->ListStreamerHealth(),
              UnorderedElementsAre(Pair("https://gw-1", true), Pair("https://gw-2", true)));
}

TEST_P(StoreSuite, PrunesHistoryBeforeTheCutAndNothingElse) {
  for (int64_t at : {100, 200, 5000}) {
    ASSERT_TRUE(
        store_->RecordActivation({.serial = "sn", .source = "s", .result = "ok", .at_ms = at})
            .ok());
    ASSERT_TRUE(store_->Audit({.at_ms = at, .actor = "a", .action = "x", .subject = "s"}).ok());
  }
  auto old_done = store_->EnqueueCommand({.agent_id = "sn-1",
                                          .kind = "restart",
                                          .created_at_ms = 100,
                                          .deadline_ms = 9000,
                                          .updated_at_ms = 100});
  auto old_open = store_->EnqueueCommand({.agent_id = "sn-1",
                                          .kind = "restart",
                                          .created_at_ms = 100,
                                          .deadline_ms = 9000,
                                          .updated_at_ms = 100});
  auto new_done = store_->EnqueueCommand({.agent_id = "sn-1",
                                          .kind = "restart",
                                          .created_at_ms = 100,
                                          .deadline_ms = 9000,
                                          .updated_at_ms = 100});
  ASSERT_TRUE(old_done.ok() && old_open.ok() && new_done.ok());
  ASSERT_TRUE(*store_->FinishCommand(*old_done, CommandState::kAcked, "done", 300));
  ASSERT_TRUE(*store_->FinishCommand(*new_done, CommandState::kAcked, "done", 5000));
  // A batch of one row per table, then the rest.
  EXPECT_EQ(*store_->PruneHistory(1000, 1), 3u);
  EXPECT_EQ(*store_->PruneHistory(1000, 100), 2u);
  EXPECT_EQ(*store_->PruneHistory(1000, 100), 0u);
  absl::StatusOr<std::vector<ActivationEntry>> activations = store_->ListActivations(0, 10);
  ASSERT_EQ(activations->size(), 1u);
  EXPECT_EQ((*activations)[0].at_ms, 5000);
  absl::StatusOr<std::vector<AuditEntry>> audit = store_->ListAudit(0, 10);
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].at_ms, 5000);
  // A command that is not over stays whatever its age; a finished one goes by when it ended.
  EXPECT_FALSE(store_->FindCommand(*old_done)->has_value());
  EXPECT_TRUE(store_->FindCommand(*old_open)->has_value());
  EXPECT_TRUE(store_->FindCommand(*new_done)->has_value());
}

TEST_P(StoreSuite, TransactionCommitsEverythingOrNothing) {
  const absl::Status failed = store_->Transaction([&]() -> absl::Status {
    if (absl::Status st = store_->PutAgent(Agent("cam-1")); !st.ok()) {
      return st;
    }
    if (absl::Status st = store_->Audit({.actor = "admin", .action = "add"}); !st.ok()) {
      return st;
    }
    return absl::FailedPreconditionError("changed my mind");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(store_->FindAgent("cam-1")->has_value());
  EXPECT_THAT(*store_->RecentAudit(10), IsEmpty());

  const absl::Status committed = store_->Transaction([&]() -> absl::Status {
    if (absl::Status st = store_->PutAgent(Agent("cam-1")); !st.ok()) {
      return st;
    }
    // A nested transaction is part of the outer one.
    return store_->Transaction([&] { return store_->Audit({.actor = "admin", .action = "add"}); });
  });
  EXPECT_TRUE(committed.ok()) << committed;
  EXPECT_TRUE(store_->FindAgent("cam-1")->has_value());
  EXPECT_EQ(store_->RecentAudit(10)->size(), 1u);
}

TEST_P(StoreSuite, TransactionSeesItsOwnWrites) {
  const absl::Status st = store_->Transaction([&]() -> absl::Status {
    if (absl::Status put = store_->PutAgent(Agent("cam-1")); !put.ok()) {
      return put;
    }
    absl::StatusOr<std::optional<AgentRecord>> found = store_->FindAgent("cam-1");
    if (!found.ok()) {
      return found.status();
    }
    return found->has_value() ? absl::OkStatus() : absl::NotFoundError("own write not visible");
  });
  EXPECT_TRUE(st.ok()) << st;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreSuite, ::testing::Values(kSqlite, kPostgres),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace camtunnel::manager
