// The command listener (manager/command_listener.h) against a real PostgreSQL: a command
// enqueued through another session is notified with its id, a session the server terminates is
// made again and asks for a rescan, a payload that is not an id is counted and ignored.
#include "manager/command_listener.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "manager/postgres_connection.h"
#include "runtime/shard.h"
#include "tests/support/pg_cluster.h"

namespace camtunnel::manager {
namespace {

using ::camtunnel::test_support::PgCluster;

// One statement on a session of its own (another manager, or anyone who may connect); the
// number of rows it returned.
int RunSql(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, sql.c_str());
  EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
      << PQresultErrorMessage(r);
  const int rows = PQntuples(r);
  PQclear(r);
  PQfinish(conn);
  return rows;
}

class CommandListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    absl::StatusOr<std::string> db = PgCluster::SharedDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    conninfo_ = *db;
    absl::StatusOr<std::unique_ptr<PostgresConnection>> store = PostgresConnection::Open(conninfo_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    ASSERT_EQ(shard_.Init({.buffer_count = 16}), 0);
  }

  void StartListener(const std::string& conninfo) {
    absl::StatusOr<std::unique_ptr<CommandListener>> listener =
        CommandListener::Start(shard_, conninfo,
                               {.command = [this](int64_t id) { ids_.push_back(id); },
                                .listening = [this] { ++listening_; }},
                               {.first_ms = 10, .max_ms = 100});
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
  }

  // Runs the shard (where the handlers run) until `done`; false after 10 s (a hang guard).
  bool RunUntil(const std::function<bool()>& done) { return shard_.RunUntil(done, 10000); }

  int64_t Enqueue(const std::string& agent_id) {
    absl::StatusOr<int64_t> id = store_->EnqueueCommand(
        {.agent_id = agent_id, .kind = "restart", .created_at_ms = 1, .deadline_ms = 2});
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }

  bool Notified(int64_t id) const { return std::find(ids_.begin(), ids_.end(), id) != ids_.end(); }

  std::string conninfo_;
  std::unique_ptr<PostgresConnection> store_;
  runtime::Shard shard_;
  std::unique_ptr<CommandListener> listener_;
  std::vector<int64_t> ids_;
  int listening_ = 0;
};

TEST_F(CommandListenerTest, NotifiesTheIdOfACommandEnqueuedByAnotherSession) {
  ASSERT_NO_FATAL_FAILURE(StartListener(conninfo_));
  ASSERT_TRUE(RunUntil([&] { return listening_ == 1; }));
  EXPECT_TRUE(listener_->counters().up);
  const int64_t id = Enqueue("cam-1");
  ASSERT_TRUE(RunUntil([&] { return Notified(id); }));
  EXPECT_EQ(ids_, std::vector<int64_t>{id});
  EXPECT_EQ(listener_->counters().notifications, 1u);
  EXPECT_EQ(listener_->counters().bad_payloads, 0u);
}

TEST_F(CommandListenerTest, AnInsertRolledBackNotifiesNobody) {
  ASSERT_NO_FATAL_FAILURE(StartListener(conninfo_));
  ASSERT_TRUE(RunUntil([&] { return listening_ == 1; }));
  ASSERT_TRUE(store_
                  ->Transaction([&]() -> absl::Status {
                    Enqueue("cam-1");
                    return absl::AbortedError("changed my mind");
                  })
                  .code() == absl::StatusCode::kAborted);
  // Notifications arrive in commit order: once the next one is in, the first would have been.
  const int64_t committed = Enqueue("cam-2");
  ASSERT_TRUE(RunUntil([&] { return Notified(committed); }));
  EXPECT_EQ(ids_, std::vector<int64_t>{committed});
}

TEST_F(CommandListenerTest, ATerminatedSessionIsMadeAgainAndAsksForARescan) {
  ASSERT_NO_FATAL_FAILURE(StartListener(conninfo_));
  ASSERT_TRUE(RunUntil([&] { return listening_ == 1; }));
  const std::string dbname = conninfo_.substr(conninfo_.rfind('=') + 1);
  // The listener's backend is the one session of this database that ran LISTEN.
  ASSERT_EQ(
      RunSql(conninfo_, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                            dbname + "' AND query LIKE 'LISTEN %'"),
      1);
  ASSERT_TRUE(RunUntil([&] { return listening_ == 2; }));
  EXPECT_EQ(listener_->counters().reconnects, 1u);
  EXPECT_TRUE(listener_->counters().up);
  // And it listens again.
  const int64_t id = Enqueue("cam-1");
  ASSERT_TRUE(RunUntil([&] { return Notified(id); }));
}

TEST_F(CommandListenerTest, APayloadThatIsNotAnIdIsCountedAndIgnored) {
  ASSERT_NO_FATAL_FAILURE(StartListener(conninfo_));
  ASSERT_TRUE(RunUntil([&] { return listening_ == 1; }));
  const std::string channel = PostgresConnection::kCommandChannel;
  for (const char* bad : {"garbage", "", "0", "-5", "+5", " 5", "5 ", "12abc", "007",
                          "99999999999999999999", "\xC3\xA9"}) {
    RunSql(conninfo_, "SELECT pg_notify('" + channel + "', '" + std::string(bad) + "')");
  }
  RunSql(conninfo_, "NOTIFY " + channel + ", '42'");
  ASSERT_TRUE(RunUntil([&] { return !ids_.empty(); }));
  EXPECT_EQ(ids_, std::vector<int64_t>{42});
  EXPECT_EQ(listener_->counters().bad_payloads, 11u);
  EXPECT_EQ(listener_->counters().notifications, 12u);
  EXPECT_TRUE(listener_->counters().up);
}

TEST_F(CommandListenerTest, StopsWhileTheDatabaseCannotBeReached) {
  // A socket folder no server listens in: the listener retries until it is destroyed.
  const std::filesystem::path empty = std::filesystem::temp_directory_path() /
                                      ("camtunnel-no-pg-listener-" + std::to_string(getpid()));
  std::filesystem::create_directories(empty);
  ASSERT_NO_FATAL_FAILURE(StartListener("host=" + empty.string() + " dbname=camtunnel"));
  EXPECT_FALSE(listener_->counters().up);
  listener_.reset();
  std::filesystem::remove_all(empty);
  EXPECT_EQ(listening_, 0);
}

TEST_F(CommandListenerTest, RejectsAMalformedConninfo) {
  absl::StatusOr<std::unique_ptr<CommandListener>> listener = CommandListener::Start(
      shard_, "host=/tmp no_such_option=1", {.command = [](int64_t) {}, .listening = [] {}});
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kInvalidArgument) << listener.status();
}

}  // namespace
}  // namespace camtunnel::manager
