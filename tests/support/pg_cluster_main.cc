// The ctest fixture around the PostgreSQL tests (tests/CMakeLists.txt): one cluster for the run.
//   camtunnel_test_pg_cluster start STATE_FILE   initdb and a server, left running
//   camtunnel_test_pg_cluster stop STATE_FILE    stopped, its folder removed
// and, for end-to-end tests in other languages, a cluster that lives as long as this process:
//   camtunnel_test_pg_cluster run [--standby]    prints "pg: conninfo=<libpq conninfo>", then
//                                                takes lines on stdin, each answered by one
//                                                "pg: ..." line (the past tense of the verb, or
//                                                "pg: failed <why>"):
//     restart [NODE]   stop and start on the same data ("pg: restarted")
//     halt [NODE]      immediate shutdown, as a crash; the data stays ("pg: halted")
//     start [NODE]     the server again after halt ("pg: started")
//     promote          the standby becomes a primary ("pg: promoted")
//     catchup          waits until the standby replayed all the primary wrote ("pg: caught-up")
//     stop, or end of input: every server stopped, folders removed, exit
// NODE is "primary" (the default) or "standby". With --standby the primary listens on a loopback
// port and a streaming standby runs beside it on another; the conninfo names both, in that
// order, with target_session_attrs=read-write (the manager's failover setting).
// A start that cannot run a cluster says why and exits 0: the tests then start their own (and
// report the same reason) or skip, and the other tests of the run are not held up by it.
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "tests/support/pg_cluster.h"

namespace {

using camtunnel::test_support::PgCluster;

void Say(const std::string& line) {
  std::printf("pg: %s\n", line.c_str());
  std::fflush(stdout);
}

// One command line of `run`; its answer.
std::string Execute(const std::string& line, PgCluster& primary, PgCluster* standby) {
  std::istringstream words(line);
  std::string verb;
  std::string node = "primary";
  words >> verb >> node;
  PgCluster* target = node == "primary" ? &primary : node == "standby" ? standby : nullptr;
  if (target == nullptr) {
    return absl::StrCat("failed no node ", node);
  }
  absl::Status st;
  std::string done;
  if (verb == "restart") {
    st = target->Restart();
    done = "restarted";
  } else if (verb == "halt") {
    st = target->StopImmediately();
    done = "halted";
  } else if (verb == "start") {
    st = target->StartAgain();
    done = "started";
  } else if (verb == "promote" && standby != nullptr) {
    st = standby->Promote();
    done = "promoted";
  } else if (verb == "catchup" && standby != nullptr) {
    st = standby->CatchUp(primary);
    done = "caught-up";
  } else {
    return absl::StrCat("failed unknown command ", line);
  }
  return st.ok() ? done : absl::StrCat("failed ", st.ToString());
}

int Run(bool with_standby) {
  if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
    Say("unavailable " + why);
    return 3;
  }
  auto primary = PgCluster::Start({.tcp = with_standby});
  if (!primary.ok()) {
    std::fprintf(stderr, "%s\n", primary.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<PgCluster> standby;
  std::string conninfo = (*primary)->conninfo();
  if (with_standby) {
    auto started = PgCluster::StartStandby(**primary);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
      return 1;
    }
    standby = *std::move(started);
    conninfo =
        absl::StrCat("host=127.0.0.1,127.0.0.1 port=", (*primary)->port(), ",", standby->port(),
                     " user=postgres dbname=postgres target_session_attrs=read-write");
  }
  Say("conninfo=" + conninfo);
  std::string line;
  while (std::getline(std::cin, line) && line != "stop") {
    Say(Execute(line, **primary, standby.get()));
  }
  bool ok = true;
  if (standby != nullptr) {
    ok = standby->Stop().ok();
  }
  return (*primary)->Stop().ok() && ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view command = argc >= 2 ? argv[1] : "";
  if (command == "start" && argc == 3) {
    if (absl::Status st = PgCluster::StartDetached(argv[2]); !st.ok()) {
      std::fprintf(stderr, "no shared PostgreSQL cluster: %s\n", st.ToString().c_str());
    }
    return 0;
  }
  if (command == "stop" && argc == 3) {
    if (absl::Status st = PgCluster::StopDetached(argv[2]); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    return 0;
  }
  if (command == "run" && (argc == 2 || (argc == 3 && std::string_view(argv[2]) == "--standby"))) {
    return Run(argc == 3);
  }
  std::fprintf(stderr, "usage: %s start|stop STATE_FILE | run [--standby]\n", argv[0]);
  return 2;
}
