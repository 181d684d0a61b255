// See pg_cluster.h.
#include "tests/support/pg_cluster.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace camtunnel::test_support {
namespace {

using Clock = std::chrono::steady_clock;

// Generous: two cores shared by parallel test processes.
constexpr auto kStartTimeout = std::chrono::seconds(60);
constexpr auto kStopTimeout = std::chrono::seconds(60);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string ErrnoText(int err) { return std::generic_category().message(err); }

// The last lines of a log, for an error message.
std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  constexpr size_t kMax = 2000;
  return text.size() > kMax ? text.substr(text.size() - kMax) : text;
}

// A loopback port free now (the server binds it a moment later; a collision fails the start,
// loudly).
absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", ErrnoText(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", ErrnoText(err)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

struct User {
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<User> LookUpUser(const char* name) {
  passwd entry{};
  passwd* found = nullptr;
  std::array<char, 4096> buffer{};
  if (getpwnam_r(name, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return User{.uid = entry.pw_uid, .gid = entry.pw_gid};
}

struct Child {
  std::vector<std::string> argv;
  std::string log_path;
  std::string workdir;
  bool drop_privileges = false;
  uid_t uid = 0;
  gid_t gid = 0;
  bool dies_with_parent = true;
};

// fork + exec with stdout and stderr to the log, as the unprivileged user when asked. Only
// async-signal-safe calls between fork and exec: everything is prepared before.
absl::StatusOr<pid_t> Spawn(const Child& c) {
  std::vector<char*> argv;
  for (const std::string& a : c.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  const int log = open(c.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return absl::InternalError(absl::StrCat("open ", c.log_path, ": ", ErrnoText(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(log);
    return absl::InternalError(absl::StrCat("fork: ", ErrnoText(err)));
  }
  if (pid == 0) {
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 ||
        chdir(c.workdir.c_str()) != 0) {
      _exit(126);
    }
    if (c.drop_privileges &&
        (setgroups(0, nullptr) != 0 || setgid(c.gid) != 0 || setuid(c.uid) != 0)) {
      _exit(126);
    }
    // A test process that dies (a crash, a timeout's SIGKILL) takes its server with it: SIGQUIT
    // is the server's immediate shutdown. Set after setuid, which clears it.
    if (c.dies_with_parent && (prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0 || getppid() != parent)) {
      _exit(126);
    }
    if (!c.dies_with_parent && setsid() < 0) {  // out of the test's process group
      _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log);
  return pid;
}

// Waits for `pid` up to `timeout`; true with its status when it exited.
bool WaitExit(pid_t pid, Clock::duration timeout, int* status) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      return true;
    }
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

// The first column of the first row of `sql`, as text.
absl::StatusOr<std::string> QueryValue(const std::string& conninfo, const char* sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connect: ", message));
  }
  PGresult* r = PQexec(conn, sql);
  absl::StatusOr<std::string> value =
      PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1
          ? absl::StatusOr<std::string>(PQgetvalue(r, 0, 0))
          : absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(r)));
  PQclear(r);
  PQfinish(conn);
  return value;
}

}  // namespace

std::string PgCluster::WhyUnavailable() {
  for (const char* tool : {"initdb", "postgres"}) {
    const std::string path = absl::StrCat(kBinDir, "/", tool);
    if (access(path.c_str(), X_OK) != 0) {
      return absl::StrCat(path,
                          " is missing: PostgreSQL 15 is not installed "
                          "(apt-get install postgresql-15)");
    }
  }
  if (geteuid() == 0 && !LookUpUser("nobody").has_value()) {
    return "running as root and there is no user 'nobody' to run the server as";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(Options options) {
  if (std::string why = WhyUnavailable(); !why.empty()) {
    return absl::FailedPreconditionError(why);
  }
  std::unique_ptr<PgCluster> cluster(new PgCluster("", options));
  if (absl::Status st = cluster->Create(); !st.ok()) {
    return st;
  }
  return cluster;
}

absl::Status PgCluster::Create() {
  if (absl::Status st = MakeFolder(); !st.ok()) {
    return st;
  }
  if (absl::Status st = InitDb(); !st.ok()) {
    return st;
  }
  return StartServer();
}

absl::Status PgCluster::MakeFolder() {
  std::string pattern = (std::filesystem::temp_directory_path() / "camtunnel-pg-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", ErrnoText(errno)));
  }
  folder_ = pattern;
  if (geteuid() == 0) {
    const std::optional<User> nobody = LookUpUser("nobody");
    if (!nobody.has_value()) {
      return absl::FailedPreconditionError("no user 'nobody' to run the server as");
    }
    drop_privileges_ = true;
    run_uid_ = nobody->uid;
    run_gid_ = nobody->gid;
    if (chown(folder_.c_str(), run_uid_, run_gid_) != 0) {
      return absl::InternalError(absl::StrCat("chown ", folder_, ": ", ErrnoText(errno)));
    }
  }
  if (options_.tcp) {
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) {
      return port.status();
    }
    port_ = *port;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::StartStandby(const PgCluster& primary) {
  if (!primary.options_.tcp) {
    return absl::FailedPreconditionError("a standby streams from a TCP cluster");
  }
  std::unique_ptr<PgCluster> standby(new PgCluster("", Options{.tcp = true}));
  if (absl::Status st = standby->MakeFolder(); !st.ok()) {
    return st;
  }
  // initdb's pg_hba.conf lets 127.0.0.1 replicate with trust; -R writes primary_conninfo and
  // standby.signal, so the copy starts as a standby of `primary`.
  if (absl::Status st = standby->RunTool(
          {"pg_basebackup", "--pgdata=" + standby->folder_ + "/data", "--host=127.0.0.1",
           "--port=" + std::to_string(primary.port_), "--username=postgres", "--wal-method=stream",
           "--write-recovery-conf", "--checkpoint=fast", "--no-sync"},
          "pg_basebackup.log");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = standby->StartServer(); !st.ok()) {
    return st;
  }
  return standby;
}

absl::StatusOr<PgCluster*> PgCluster::Shared() {
  // Started (or found) on first use; the static's destructor stops an own server at exit.
  static absl::StatusOr<std::unique_ptr<PgCluster>> shared =
      []() -> absl::StatusOr<std::unique_ptr<PgCluster>> {
    // Tests never change the environment, so getenv's race with setenv cannot happen here.
    const char* state_file = std::getenv(kSharedStateEnv);  // NOLINT(concurrency-mt-unsafe)
    if (state_file != nullptr && std::filesystem::exists(state_file)) {
      return Attach(state_file);
    }
    return Start();
  }();
  if (!shared.ok()) {
    return shared.status();
  }
  return shared->get();
}

absl::Status PgCluster::StartDetached(const std::string& state_file) {
  if (std::filesystem::exists(state_file)) {
    (void)StopDetached(state_file);
  }
  if (std::string why = WhyUnavailable(); !why.empty()) {
    return absl::FailedPreconditionError(why);
  }
  std::unique_ptr<PgCluster> cluster(new PgCluster("", Options()));
  cluster->dies_with_parent_ = false;
  if (absl::Status st = cluster->Create(); !st.ok()) {
    return st;
  }
  const std::string temp = state_file + ".new";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << cluster->folder_ << "\n" << cluster->port_ << "\n" << cluster->server_pid_ << "\n";
    if (!out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", temp));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, state_file, error);
  if (error) {
    return absl::InternalError(absl::StrCat("rename to ", state_file, ": ", error.message()));
  }
  cluster->owned_ = false;  // left running
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Attach(const std::string& state_file) {
  std::ifstream in(state_file);
  std::string folder;
  int port = 0;
  pid_t pid = 0;
  if (!(in >> folder >> port >> pid)) {
    return absl::InvalidArgumentError(absl::StrCat("unreadable cluster state ", state_file));
  }
  std::unique_ptr<PgCluster> cluster(new PgCluster(folder, Options()));
  cluster->port_ = port;
  cluster->owned_ = false;
  return cluster;
}

absl::Status PgCluster::StopDetached(const std::string& state_file) {
  absl::StatusOr<std::unique_ptr<PgCluster>> cluster = Attach(state_file);
  std::error_code ignored;
  std::filesystem::remove(state_file, ignored);
  if (!cluster.ok()) {
    return cluster.status();
  }
  const std::string folder = (*cluster)->folder_;
  // The server is not this process's child: it is gone when it has removed postmaster.pid
  // (a zombie nobody reaps would still answer kill(pid, 0)). Its first line is the pid, so a
  // recycled pid is never signalled.
  const std::string pid_file = folder + "/data/postmaster.pid";
  pid_t pid = 0;
  absl::Status result = absl::OkStatus();
  if (std::ifstream in(pid_file); in >> pid && pid > 0) {
    kill(pid, SIGQUIT);  // immediate shutdown: the data is removed next
    const auto deadline = Clock::now() + kStopTimeout;
    while (std::filesystem::exists(pid_file) && Clock::now() < deadline) {
      std::this_thread::sleep_for(kPollInterval);
    }
    if (std::filesystem::exists(pid_file)) {
      kill(pid, SIGKILL);
      result = absl::DeadlineExceededError("postgres did not stop on SIGINT; killed");
    }
  }
  std::filesystem::remove_all(folder, ignored);
  return result;
}

PgCluster::~PgCluster() {
  if (!owned_ || folder_.empty()) {
    return;
  }
  // Immediate shutdown: the data is removed next, a shutdown checkpoint would be wasted writes.
  (void)StopServer(SIGQUIT);
  std::error_code ignored;
  std::filesystem::remove_all(folder_, ignored);
}

absl::Status PgCluster::InitDb() {
  return RunTool({"initdb", "--pgdata=" + folder_ + "/data", "--username=postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync"},
                 "initdb.log");
}

absl::Status PgCluster::RunTool(std::vector<std::string> argv, const std::string& log_name) {
  const std::string tool = argv[0];
  argv[0] = absl::StrCat(kBinDir, "/", tool);
  const std::string log = absl::StrCat(folder_, "/", log_name);
  absl::StatusOr<pid_t> pid = Spawn({
      .argv = std::move(argv),
      .log_path = log,
      .workdir = folder_,
      .drop_privileges = drop_privileges_,
      .uid = run_uid_,
      .gid = run_gid_,
  });
  if (!pid.ok()) {
    return pid.status();
  }
  int status = 0;
  if (!WaitExit(*pid, kStartTimeout, &status)) {
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    return absl::DeadlineExceededError(absl::StrCat(tool, " timed out: ", Tail(log)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(tool, " failed: ", Tail(log)));
  }
  return absl::OkStatus();
}

absl::Status PgCluster::StartServer() {
  const std::string log = folder_ + "/postgres.log";
  absl::StatusOr<pid_t> pid = Spawn({
      .argv = {absl::StrCat(kBinDir, "/postgres"), "-D", folder_ + "/data", "-k", folder_, "-p",
               std::to_string(port_), "-c",
               options_.tcp ? "listen_addresses=127.0.0.1" : "listen_addresses=", "-c", "fsync=off",
               "-c", "synchronous_commit=off", "-c", "full_page_writes=off"},
      .log_path = log,
      .workdir = folder_,
      .drop_privileges = drop_privileges_,
      .uid = run_uid_,
      .gid = run_gid_,
      .dies_with_parent = dies_with_parent_,
  });
  if (!pid.ok()) {
    return pid.status();
  }
  server_pid_ = *pid;
  const std::string ping = conninfo() + " connect_timeout=2";
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    if (PQping(ping.c_str()) == PQPING_OK) {
      return absl::OkStatus();
    }
    int status = 0;
    if (waitpid(server_pid_, &status, WNOHANG) == server_pid_) {
      server_pid_ = 0;
      return absl::InternalError(absl::StrCat("postgres exited at start: ", Tail(log)));
    }
    if (Clock::now() >= deadline) {
      (void)Stop();
      return absl::DeadlineExceededError(absl::StrCat("postgres not ready: ", Tail(log)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status PgCluster::Stop() { return StopServer(SIGINT); }

absl::Status PgCluster::StopServer(int signal) {
  if (server_pid_ == 0) {
    return absl::OkStatus();
  }
  const pid_t pid = std::exchange(server_pid_, 0);
  kill(pid, signal);
  int status = 0;
  if (WaitExit(pid, kStopTimeout, &status)) {
    return absl::OkStatus();
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return absl::DeadlineExceededError("postgres did not stop when told; killed");
}

absl::Status PgCluster::Restart() {
  if (!owned_) {
    return absl::FailedPreconditionError("the shared cluster is not this test's to restart");
  }
  if (absl::Status st = Stop(); !st.ok()) {
    return st;
  }
  return StartServer();
}

absl::Status PgCluster::StopImmediately() { return StopServer(SIGQUIT); }

absl::Status PgCluster::StartAgain() {
  if (server_pid_ != 0) {
    return absl::FailedPreconditionError("the server is running");
  }
  return StartServer();
}

absl::Status PgCluster::Promote() {
  return RunTool({"pg_ctl", "promote", "--pgdata=" + folder_ + "/data", "--wait", "--timeout=60"},
                 "pg_ctl.log");
}

absl::Status PgCluster::CatchUp(const PgCluster& primary) {
  // A checkpoint flushes all the WAL written so far: this cluster commits asynchronously, so
  // a commit may be answered (and its rows seen) before its WAL is flushed, and only flushed
  // WAL is streamed. (A synchronous commit of a transaction that wrote nothing flushes nothing.)
  absl::StatusOr<std::string> target =
      QueryValue(primary.conninfo(), "CHECKPOINT; SELECT pg_current_wal_flush_lsn()::text");
  if (!target.ok()) {
    return target.status();
  }
  // Received is enough: promotion replays all the standby received before it takes writes.
  const std::string check =
      absl::StrCat("SELECT pg_last_wal_receive_lsn() >= '", *target, "'::pg_lsn");
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    absl::StatusOr<std::string> done = QueryValue(conninfo(), check.c_str());
    if (done.ok() && *done == "t") {
      return absl::OkStatus();
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the standby did not receive the primary's WAL up to ", *target,
                       done.ok() ? "" : absl::StrCat(": ", done.status().ToString())));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string PgCluster::conninfo(std::string_view dbname) const {
  return absl::StrCat("host=", options_.tcp ? "127.0.0.1" : folder_, " port=", port_,
                      " user=postgres dbname=", std::string(dbname));
}

absl::StatusOr<std::string> PgCluster::SharedDatabase() {
  absl::StatusOr<PgCluster*> cluster = Shared();
  if (!cluster.ok()) {
    return cluster.status();
  }
  return (*cluster)->CreateDatabase();
}

absl::StatusOr<std::string> PgCluster::CreateDatabase() {
  // Unique across the processes sharing the cluster.
  const std::string name = absl::StrCat("test_", getpid(), "_", ++databases_);
  PGconn* conn = PQconnectdb(conninfo().c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connect: ", message));
  }
  // The name is ours ("test_<n>"), never input: an identifier cannot be a parameter.
  PGresult* r = PQexec(conn, absl::StrCat("CREATE DATABASE ", name).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string message = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  if (!ok) {
    return absl::InternalError(absl::StrCat("CREATE DATABASE ", name, ": ", message));
  }
  return conninfo(name);
}

}  // namespace camtunnel::test_support
