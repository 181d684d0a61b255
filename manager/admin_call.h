// One HTTP request to an admin API: a Streamer's (camtunnel-gateway's admin listener: GET
// /readyz for health, PUT /api/v1/denylist/{id} for revocation, PUT/DELETE
// /api/v1/relocations/{id} for redirects) or the managing server's (POST /api/v1/handover from a
// separate activation server). Plain HTTP to the admin URL's address, with a bearer token when
// the peer needs one. Reports the status code and the body (at most kMaxAdminReplyBody) once,
// or status 0 when the peer could not be reached or did not answer within the timeout.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/shard.h"

namespace camtunnel::manager {

struct AdminRequest {
  sockaddr_storage to{};
  std::string host;     // Host header (host:port of the admin URL)
  std::string token;    // empty: none sent
  std::string headers;  // more header lines, each ending in CRLF
  std::string method;
  std::string path;
  std::string body;  // sent as application/json when not empty
  uint64_t timeout_ms = 2000;
};

inline constexpr size_t kMaxAdminReplyBody = 4096;

// An admin URL, "http://host:port" with a numeric host: the address and the Host header value.
struct AdminTarget {
  sockaddr_storage to{};
  std::string host;
};
std::optional<AdminTarget> ParseAdminUrl(std::string_view url);

// `done` runs on the shard's thread, unless `alive` is false by then (the caller went away).
// A reply whose body is longer than kMaxAdminReplyBody, or cut short, reports status 0.
void CallAdmin(runtime::Shard& shard, const AdminRequest& request, std::shared_ptr<bool> alive,
               std::function<void(int status, std::string body)> done);

}  // namespace camtunnel::manager
