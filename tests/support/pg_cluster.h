// A throwaway PostgreSQL 15 cluster for tests: initdb into a fresh temporary folder, a server
// listening on a unix socket in that folder only (or on a free loopback port), stopped and
// removed when the object goes. The server refuses to run as root, so a root test process runs
// it as `nobody` (the folder is handed to that user). Durability is off (fsync, synchronous
// commit): nothing here outlives the test run. A TCP cluster can also get a streaming standby
// (pg_basebackup -R from it) that a test may promote: failover as operators run it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace camtunnel::test_support {

class PgCluster {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";

  struct Options {
    // Listen on 127.0.0.1 (a free port) instead of the unix socket: for tests of TCP behaviour
    // (keepalives, a server that vanishes from the network).
    bool tcp = false;
  };

  // Empty when this machine can run a cluster; otherwise why it cannot (for GTEST_SKIP).
  static std::string WhyUnavailable();

  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start() { return Start(Options()); }

  // A streaming standby of `primary` (a TCP cluster): a base backup with the replication
  // settings written (pg_basebackup -R), served on its own free loopback port, read-only until
  // Promote.
  static absl::StatusOr<std::unique_ptr<PgCluster>> StartStandby(const PgCluster& primary);

  // The cluster tests share, each taking a fresh database (CreateDatabase); not for tests that
  // stop or restart it. Under ctest it is the run's cluster (see StartDetached), found through
  // the environment variable kSharedStateEnv; otherwise this process starts one on the first call
  // and stops it at exit. A failed start is remembered: every later call returns the same error.
  static absl::StatusOr<PgCluster*> Shared();
  // A fresh database on the shared cluster: its connection string.
  static absl::StatusOr<std::string> SharedDatabase();

  // One cluster for all the test processes of a ctest run (an initdb per process would cost
  // seconds each): the fixture tests pg_cluster_start and pg_cluster_stop (tests/CMakeLists.txt)
  // call these. StartDetached leaves the server running after this process exits and records it
  // in `state_file` (replacing one a killed run left behind); StopDetached stops it and removes
  // its folder.
  static constexpr const char* kSharedStateEnv = "CAMTUNNEL_TEST_PG_CLUSTER";
  static absl::Status StartDetached(const std::string& state_file);
  static absl::Status StopDetached(const std::string& state_file);

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  // Stops the server (immediate shutdown) and removes the folder, unless another process owns
  // them.
  ~PgCluster();

  // Fast shutdown (SIGINT: sessions are cut, the server exits once they are), then waits.
  absl::Status Stop();
  // Stop, then start again on the same data (and the same port). Not on the shared cluster.
  absl::Status Restart();
  // Immediate shutdown (SIGQUIT: no checkpoint, sessions cut at once), as a crash of the
  // server; the data stays for StartAgain.
  absl::Status StopImmediately();
  // The server again, on the same data and port, after Stop or StopImmediately.
  absl::Status StartAgain();
  // A standby becomes a primary (pg_ctl promote, waiting until it accepts writes).
  absl::Status Promote();
  // Waits until this standby has received everything `primary` has committed so far (all of
  // it survives a Promote).
  absl::Status CatchUp(const PgCluster& primary);

  // libpq key=value conninfo for `dbname`, as the superuser "postgres" (trust authentication).
  std::string conninfo(std::string_view dbname = "postgres") const;
  // A new, empty database; its conninfo.
  absl::StatusOr<std::string> CreateDatabase();

  pid_t server_pid() const { return server_pid_; }
  int port() const { return port_; }
  const std::string& folder() const { return folder_; }

 private:
  PgCluster(std::string folder, Options options) : folder_(std::move(folder)), options_(options) {}
  static absl::StatusOr<std::unique_ptr<PgCluster>> Attach(const std::string& state_file);
  // A fresh folder, initdb, the server.
  absl::Status Create();
  // A fresh folder for the server's user, and the port (a free one with TCP).
  absl::Status MakeFolder();
  absl::Status InitDb();
  // Runs a PostgreSQL tool of kBinDir as the server's user; its output goes to `log_name` in
  // the folder.
  absl::Status RunTool(std::vector<std::string> argv, const std::string& log_name);
  absl::Status StartServer();
  absl::Status StopServer(int signal);

  std::string folder_;
  Options options_;
  int port_ = 5432;  // with the unix socket, only part of the socket's name
  uid_t run_uid_ = 0;
  gid_t run_gid_ = 0;
  bool drop_privileges_ = false;
  pid_t server_pid_ = 0;
  // False for a cluster another process started and stops (Attach, StartDetached).
  bool owned_ = true;
  // The server gets SIGQUIT when the process that started it dies (a crashed test leaves no
  // server behind); not for StartDetached.
  bool dies_with_parent_ = true;
  int databases_ = 0;
};

}  // namespace camtunnel::test_support
