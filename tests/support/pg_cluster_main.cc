// The ctest fixture around the PostgreSQL tests (tests/CMakeLists.txt): one cluster for the run.
//   camtunnel_test_pg_cluster start STATE_FILE   initdb and a server, left running
//   camtunnel_test_pg_cluster stop STATE_FILE    stopped, its folder removed
// A start that cannot run a cluster says why and exits 0: the tests then start their own (and
// report the same reason) or skip, and the other tests of the run are not held up by it.
#include <cstdio>
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
  std::fprintf(stderr, "usage: %s start|stop STATE_FILE\n", argv[0]);
  return 2;
}
