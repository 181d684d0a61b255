// One HTTP request to a Streamer's admin API (camtunnel-gateway's admin listener): GET /readyz
// for health, PUT /api/v1/denylist/{id} for revocation, PUT/DELETE /api/v1/relocations/{id}
// (with a small JSON body) for redirects. Plain HTTP on the address of the
// Streamer's admin_url, with its bearer token when the gateway needs one. Reports the status
// code once, or 0 when the gateway could not be reached or did not answer within the timeout.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/shard.h"

namespace camtunnel::manager {

struct GatewayAdminRequest {
  sockaddr_storage to{};
  std::string host;   // Host header (host:port of the admin URL)
  std::string token;  // empty: none sent
  std::string method;
  std::string path;
  std::string body;  // sent as application/json when not empty
  uint64_t timeout_ms = 2000;
};

// `done` runs on the shard's thread, unless `alive` is false by then (the caller went away).
void CallGatewayAdmin(runtime::Shard& shard, const GatewayAdminRequest& request,
                      std::shared_ptr<bool> alive, std::function<void(int status)> done);

}  // namespace camtunnel::manager
