// See postgres_conninfo.h.
#include "manager/postgres_conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace camtunnel::manager {
namespace {

// Added to the operator's conninfo unless it sets them: a dead peer or a black-holed route is
// noticed in about 10 s instead of the kernel's defaults (two hours of idle before the first
// keepalive; unacknowledged data retransmitted for 15 minutes).
constexpr std::pair<const char*, const char*> kConnectDefaults[] = {
    {"keepalives", "1"},
    {"keepalives_idle", "5"},
    {"keepalives_interval", "2"},
    {"keepalives_count", "3"},
    {"tcp_user_timeout", "10000"},
    {"connect_timeout", "5"},
    {"fallback_application_name", "camtunnel-manager"},
    // Text goes over the wire as UTF-8 whatever the server's encoding.
    {"client_encoding", "UTF8"},
};

}  // namespace

absl::StatusOr<PgConnectParams> PgConnectParams::Parse(const std::string& conninfo) {
  char* parse_error = nullptr;
  PQconninfoOption* given = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (given == nullptr) {
    std::string message = parse_error != nullptr
                              ? std::string(absl::StripTrailingAsciiWhitespace(parse_error))
                              : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(absl::StrCat("state database conninfo: ", message));
  }
  PgConnectParams p;
  for (PQconninfoOption* o = given; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) {
      p.keywords.emplace_back(o->keyword);
      p.values.emplace_back(o->val);
    }
  }
  PQconninfoFree(given);
  for (const auto& [key, value] : kConnectDefaults) {
    if (std::find(p.keywords.begin(), p.keywords.end(), key) == p.keywords.end()) {
      p.keywords.emplace_back(key);
      p.values.emplace_back(value);
    }
  }
  return p;
}

std::vector<const char*> PgConnectParams::Array(const std::vector<std::string>& strings) {
  std::vector<const char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    out.push_back(s.c_str());
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace camtunnel::manager
