// The ctest fixture around the PostgreSQL tests (tests/CMakeLists.txt): one cluster for the run.
//   camtunnel_test_pg_cluster start STATE_FILE   initdb and a server, left running
//   camtunnel_test_pg_cluster stop STATE_FILE    stopped, its folder removed
// and, for end-to-end tests in other languages, a cluster that lives as long as this process:
//   camtunnel_test_pg_cluster run                prints "pg: conninfo=<libpq conninfo>", then
//                                                takes lines on stdin: "restart" (stop and start
//                                                on the same data; prints "pg: restarted"),
//                                                "stop" or end of input (stop, remove, exit)
// A start that cannot run a cluster says why and exits 0: the tests then start their own (and
// report the same reason) or skip, and the other tests of the run are not held up by it.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "tests/support/pg_cluster.h"

int main(int argc, char** argv) {
  using camtunnel::test_support::PgCluster;
  const std::string_view command = argc == 3 ? argv[1] : "";
  if (command == "start") {
    if (absl::Status st = PgCluster::StartDetached(argv[2]); !st.ok()) {
      std::fprintf(stderr, "no shared PostgreSQL cluster: %s\n", st.ToString().c_str());
    }
    return 0;
  }
  if (command == "stop") {
    if (absl::Status st = PgCluster::StopDetached(argv[2]); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    return 0;
  }
  if (argc == 2 && std::string_view(argv[1]) == "run") {
    if (std::string why = PgCluster::WhyUnavailable(); !why.empty()) {
      std::printf("pg: unavailable %s\n", why.c_str());
      std::fflush(stdout);
      return 3;
    }
    auto cluster = PgCluster::Start();
    if (!cluster.ok()) {
      std::fprintf(stderr, "%s\n", cluster.status().ToString().c_str());
      return 1;
    }
    std::printf("pg: conninfo=%s\n", (*cluster)->conninfo().c_str());
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line) && line != "stop") {
      if (line == "restart") {
        const absl::Status st = (*cluster)->Restart();
        std::printf("pg: %s\n", st.ok() ? "restarted" : st.ToString().c_str());
        std::fflush(stdout);
      }
    }
    return (*cluster)->Stop().ok() ? 0 : 1;
  }
  std::fprintf(stderr, "usage: %s start|stop STATE_FILE | run\n", argv[0]);
  return 2;
}
