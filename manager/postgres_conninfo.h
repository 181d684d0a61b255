// The connection parameters every PostgreSQL session of the manager uses: the operator's
// conninfo (a postgresql:// URI or a key=value string) with the manager's defaults added where it
// sets none, so a lost server is noticed in seconds, not after the kernel's two-hour TCP
// defaults: keepalives (idle 5 s, every 2 s, 3 probes), tcp_user_timeout 10 s, connect_timeout
// 5 s, an application name, UTF-8 on the wire. The store's sessions (postgres_connection.h) and
// the command listener's (command_listener.h) connect with the same ones.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace camtunnel::manager {

struct PgConnectParams {
  // INVALID_ARGUMENT when libpq cannot parse `conninfo` (the message never repeats the string:
  // it may hold a password).
  static absl::StatusOr<PgConnectParams> Parse(const std::string& conninfo);

  // Null-terminated arrays for PQconnectdbParams and PQconnectStartParams, pointing into this
  // object (keep it alive and unchanged during the call). Pass expand_dbname 0: the conninfo was
  // parsed here, and a dbname is a name, never a second conninfo.
  std::vector<const char*> keyword_array() const { return Array(keywords); }
  std::vector<const char*> value_array() const { return Array(values); }

  std::vector<std::string> keywords;
  std::vector<std::string> values;

 private:
  static std::vector<const char*> Array(const std::vector<std::string>& strings);
};

}  // namespace camtunnel::manager
