// `camtunnel-manager migrate`: a whole store copied into another reads back identical (agents in
// both states with their secrets, assignments and locations; claims; activations; audit), a
// destination that holds agents is refused unless forced, and a copy run again skips what it
// already copied.
#include "manager/store_migration.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "manager/secret_sealer.h"
#include "manager/sqlite_connection.h"

namespace camtunnel::manager {
namespace {

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("camtunnel-migrate-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

SecretSealer TestSealer() {
  SecretSealer::KeyEntry k{.id = 4};
  k.key.fill(0x5c);
  auto sealer = SecretSealer::FromKeys({k});
  EXPECT_TRUE(sealer.ok());
  return std::move(*sealer);
}

std::unique_ptr<StoreConnection> OpenOrDie(const std::string& spec, const SecretSealer* sealer) {
  auto c = OpenStoreConnection(spec, sealer);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// 7 agents (every third deactivated, some assigned, located, seen), 3 claims, 5 activations and
// 9 audit entries.
void Fill(StoreConnection& c) {
  for (int i = 0; i < 7; ++i) {
    AgentRecord a{.agent_id = "cam-" + std::to_string(i),
                  .operator_id = i % 2 ? "acme" : "",
                  .activated_at_ms = 1000 + i,
                  .last_seen_ms = i == 4 ? 0 : 5000 + i,
                  .last_status = i == 4 ? "" : "state=connected n=" + std::to_string(i)};
    for (size_t b = 0; b < a.secret.size(); ++b) {
      a.secret[b] = static_cast<uint8_t>(static_cast<size_t>(i) * 31 + b);
    }
    ASSERT_TRUE(c.PutAgent(a).ok());
    if (i != 5) {
      ASSERT_TRUE(c.RecordAssignment(a.agent_id, i % 2 ? "https://gw1" : "https://gw2", 10).ok());
    }
    if (i % 2 == 0) {
      ASSERT_TRUE(c.RecordLocation(a.agent_id, "https://gw" + std::to_string(i)).ok());
    }
    if (i % 3 == 0) {
      ASSERT_TRUE(c.SetState(a.agent_id, AgentState::kDeactivated).ok());
    }
  }
  for (int i = 0; i < 3; ++i) {
    ClaimRecord claim{
        .serial = "sn-" + std::to_string(i), .operator_id = "acme", .created_at_ms = 200 + i};
    claim.token_salt.fill(static_cast<uint8_t>(i));
    claim.token_hash.fill(static_cast<uint8_t>(0x80 + i));
    ASSERT_TRUE(c.PutClaim(claim).ok());
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.RecordActivation({.serial = "sn-" + std::to_string(i),
                                    .source = "127.0.0.1",
                                    .result = i % 2 ? "ok" : "refused",
                                    .at_ms = 300 + i})
                    .ok());
  }
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(c.Audit({.at_ms = 400 + i,
                         .actor = "admin",
                         .action = "deactivate",
                         .subject = "cam-" + std::to_string(i),
                         .detail = "reason " + std::to_string(i)})
                    .ok());
  }
}

std::vector<AgentRecord> AllAgents(StoreConnection& c) {
  auto page = c.ListAgents({.limit = 1000});
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? page->agents : std::vector<AgentRecord>();
}

void ExpectSameAgents(StoreConnection& a, StoreConnection& b) {
  const auto left = AllAgents(a);
  const auto right = AllAgents(b);
  ASSERT_EQ(left.size(), right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    const AgentRecord& x = left[i];
    auto y = b.FindAgent(x.agent_id);
    ASSERT_TRUE(y.ok() && y->has_value()) << x.agent_id;
    EXPECT_EQ(x.agent_id, right[i].agent_id);
    EXPECT_EQ(x.secret, (*y)->secret) << x.agent_id;
    EXPECT_EQ(x.state, (*y)->state) << x.agent_id;
    EXPECT_EQ(x.operator_id, (*y)->operator_id) << x.agent_id;
    EXPECT_EQ(x.activated_at_ms, (*y)->activated_at_ms) << x.agent_id;
    EXPECT_EQ(x.last_seen_ms, (*y)->last_seen_ms) << x.agent_id;
    EXPECT_EQ(x.last_status, (*y)->last_status) << x.agent_id;
    EXPECT_EQ(x.streamer_url, (*y)->streamer_url) << x.agent_id;
    EXPECT_EQ(x.located_url, (*y)->located_url) << x.agent_id;
  }
}

void ExpectSameLogs(StoreConnection& a, StoreConnection& b) {
  auto claims_a = a.ListClaims("", 1000);
  auto claims_b = b.ListClaims("", 1000);
  ASSERT_TRUE(claims_a.ok() && claims_b.ok());
  ASSERT_EQ(claims_a->size(), claims_b->size());
  for (size_t i = 0; i < claims_a->size(); ++i) {
    const ClaimRecord& x = (*claims_a)[i];
    const ClaimRecord& y = (*claims_b)[i];
    EXPECT_EQ(x.serial, y.serial);
    EXPECT_EQ(x.operator_id, y.operator_id);
    EXPECT_EQ(x.token_salt, y.token_salt);
    EXPECT_EQ(x.token_hash, y.token_hash);
    EXPECT_EQ(x.created_at_ms, y.created_at_ms);
  }
  auto act_a = a.ListActivations(0, 1000);
  auto act_b = b.ListActivations(0, 1000);
  ASSERT_TRUE(act_a.ok() && act_b.ok());
  ASSERT_EQ(act_a->size(), act_b->size());
  for (size_t i = 0; i < act_a->size(); ++i) {
    EXPECT_EQ((*act_a)[i].id, (*act_b)[i].id);
    EXPECT_EQ((*act_a)[i].serial, (*act_b)[i].serial);
    EXPECT_EQ((*act_a)[i].source, (*act_b)[i].source);
    EXPECT_EQ((*act_a)[i].result, (*act_b)[i].result);
    EXPECT_EQ((*act_a)[i].at_ms, (*act_b)[i].at_ms);
  }
  auto audit_a = a.ListAudit(0, 1000);
  auto audit_b = b.ListAudit(0, 1000);
  ASSERT_TRUE(audit_a.ok() && audit_b.ok());
  ASSERT_EQ(audit_a->size(), audit_b->size());
  for (size_t i = 0; i < audit_a->size(); ++i) {
    EXPECT_EQ((*audit_a)[i].id, (*audit_b)[i].id);
    EXPECT_EQ((*audit_a)[i].at_ms, (*audit_b)[i].at_ms);
    EXPECT_EQ((*audit_a)[i].actor, (*audit_b)[i].actor);
    EXPECT_EQ((*audit_a)[i].action, (*audit_b)[i].action);
    EXPECT_EQ((*audit_a)[i].subject, (*audit_b)[i].subject);
    EXPECT_EQ((*audit_a)[i].detail, (*audit_b)[i].detail);
  }
}

TEST(StoreMigration, CopiedStoreReadsBackIdentical) {
  const std::string dir = TempDir();
  SecretSealer sealer = TestSealer();
  auto from = OpenOrDie("sqlite:" + dir + "/from.db", &sealer);
  auto to = OpenOrDie(dir + "/to.db", &sealer);
  ASSERT_TRUE(from && to);
  Fill(*from);
  // Batches of 2: every table spans several destination transactions.
  auto counts = MigrateStore(*from, *to, {.batch = 2, .now_ms = 99});
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->agents, 7u);
  EXPECT_EQ(counts->claims, 3u);
  EXPECT_EQ(counts->activations, 5u);
  EXPECT_EQ(counts->audit, 9u);
  ExpectSameAgents(*from, *to);
  ExpectSameLogs(*from, *to);
  EXPECT_EQ(*from->CountAssignedByStreamer(), *to->CountAssignedByStreamer());
  EXPECT_EQ(*from->ListDeactivated(), *to->ListDeactivated());
}

// Agents keep the highest command id they acted on: the destination's ids go on above the
// source's, or a fleet moved to it would take its first commands for ones already done.
TEST(StoreMigration, CommandIdsGoOnRisingInTheDestination) {
  const std::string dir = TempDir();
  auto from = OpenOrDie(dir + "/from.db", nullptr);
  auto to = OpenOrDie(dir + "/to.db", nullptr);
  ASSERT_TRUE(from && to);
  Fill(*from);
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    auto id = from->EnqueueCommand({.agent_id = "sn-1", .kind = "restart", .deadline_ms = 1});
    ASSERT_TRUE(id.ok());
    last = *id;
  }
  auto counts = MigrateStore(*from, *to, {.batch = 100, .now_ms = 99});
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->command_id_floor, last);
  auto next = to->EnqueueCommand({.agent_id = "sn-1", .kind = "restart", .deadline_ms = 1});
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, last);
  // A floor below what the destination already issued changes nothing.
  ASSERT_TRUE(to->KeepCommandIdsAbove(1).ok());
  EXPECT_EQ(*to->LastCommandId(), *next);
}

TEST(StoreMigration, ClearSourceIsSealedInTheDestination) {
  const std::string dir = TempDir();
  SecretSealer sealer = TestSealer();
  auto clear = OpenOrDie(dir + "/from.db", nullptr);
  ASSERT_TRUE(clear);
  Fill(*clear);
  clear.reset();
  auto from = OpenOrDie(dir + "/from.db", &sealer);
  auto to = OpenOrDie(dir + "/to.db", &sealer);
  ASSERT_TRUE(MigrateStore(*from, *to, {}).ok());
  ExpectSameAgents(*from, *to);
  // The destination's rows are sealed: without the key they do not open.
  to.reset();
  auto keyless = OpenOrDie(dir + "/to.db", nullptr);
  EXPECT_TRUE(absl::IsDataLoss(keyless->FindAgent("cam-1").status()));
}

TEST(StoreMigration, RefusesADestinationThatHoldsAgents) {
  const std::string dir = TempDir();
  auto from = OpenOrDie(dir + "/from.db", nullptr);
  auto to = OpenOrDie(dir + "/to.db", nullptr);
  Fill(*from);
  ASSERT_TRUE(to->PutAgent({.agent_id = "other", .activated_at_ms = 1}).ok());
  auto refused = MigrateStore(*from, *to, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status()));
  EXPECT_EQ(*to->CountAgents({}), 1u);
  EXPECT_TRUE(to->ListAudit(0, 10)->empty());
}

TEST(StoreMigration, RunAgainWithForceDoublesNothing) {
  const std::string dir = TempDir();
  auto from = OpenOrDie(dir + "/from.db", nullptr);
  auto to = OpenOrDie(dir + "/to.db", nullptr);
  Fill(*from);
  ASSERT_TRUE(MigrateStore(*from, *to, {.batch = 3}).ok());
  // The source's audit grew after the copy (as a copy cut short misses its last rows).
  ASSERT_TRUE(from->Audit({.at_ms = 999, .actor = "admin", .action = "late"}).ok());
  auto again = MigrateStore(*from, *to, {.force = true, .batch = 3});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->agents, 7u);
  EXPECT_EQ(again->activations, 0u);
  EXPECT_EQ(again->activations_skipped, 5u);
  EXPECT_EQ(again->audit, 1u);
  EXPECT_EQ(again->audit_skipped, 9u);
  ExpectSameAgents(*from, *to);
  ExpectSameLogs(*from, *to);
}

}  // namespace
}  // namespace camtunnel::manager
