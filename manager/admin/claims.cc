// Operator claims (docs/manager.md): GET /api/v1/claims lists them; PUT /api/v1/claims/{serial}
// with {"operator": id, "token": label token} records one; DELETE /api/v1/claims/{serial} drops
// it. The token is only ever stored as its salted hash: never listed, audited or logged.
#include "manager/claims.h"

#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/manager_server.h"
#include "proto/identifiers.h"

namespace camtunnel::manager::admin {
namespace {

using nlohmann::json;

void List(http::Exchange& ex, ManagerServer& server) {
  auto claims = server.store().ListClaims(kMaxListed);
  if (!claims.ok()) {
    ex.Error(500, "state database error");
    return;
  }
  json list = json::array();
  for (const ClaimRecord& c : *claims) {
    // Never the hash: it is as good as the token for an offline guess.
    list.push_back(
        {{"serial", c.serial}, {"operator", c.operator_id}, {"created_at_ms", c.created_at_ms}});
  }
  ex.Json(200, json{{"claims", list}}.dump() + "\n");
}

void Delete(http::Exchange& ex, ManagerServer& server, std::string_view serial) {
  auto was = server.store().DeleteClaim(serial);
  if (!was.ok()) {
    ex.Error(500, "state database error");
    return;
  }
  server.store().CheckWrite("audit", server.store().Audit({.at_ms = ManagerServer::WallMs(),
                                                           .actor = "admin",
                                                           .action = "unclaim",
                                                           .subject = std::string(serial)}));
  ex.Json(*was ? 200 : 404, json{{"serial", serial}, {"was_claimed", *was}}.dump() + "\n");
}

void Put(http::Exchange& ex, ManagerServer& server, std::string_view serial,
         std::string_view body) {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("operator") || !doc["operator"].is_string() ||
      !doc.contains("token") || !doc["token"].is_string()) {
    ex.Error(400, R"(body must be {"operator":id,"token":label token})");
    return;
  }
  const std::string& op = doc["operator"].get_ref<const std::string&>();
  const std::string& token = doc["token"].get_ref<const std::string&>();
  if (!proto::IsCanonicalAgentId(op)) {
    ex.Error(400, "operator must be 1..63 of [a-z0-9-]");
    return;
  }
  if (!IsValidClaimToken(token)) {
    ex.Error(400, "token must be 8..128 printable characters, no spaces");
    return;
  }
  const int64_t now = ManagerServer::WallMs();
  if (!server.store().PutClaim(MakeClaim(serial, op, token, now)).ok()) {
    ex.Error(500, "state database error");
    return;
  }
  server.store().CheckWrite("audit", server.store().Audit({.at_ms = now,
                                                           .actor = "admin",
                                                           .action = "claim",
                                                           .subject = std::string(serial),
                                                           .detail = op}));
  ex.Json(200, json{{"serial", serial}, {"operator", op}}.dump() + "\n");
}

void Change(http::Exchange& ex, ManagerServer& server) {
  const std::string_view serial = ex.param("serial");
  if (ex.method() == "DELETE") {
    if (!proto::IsCanonicalAgentId(serial)) {
      ex.Error(400, "serial must be 1..63 of [a-z0-9-]");
      return;
    }
    Delete(ex, server, serial);
    return;
  }
  // The body first, as before: a PUT without one is refused (411) whatever its serial.
  ex.ReadBody(kMaxBody, [&server](http::Exchange& e, std::string_view body) {
    const std::string_view s = e.param("serial");
    if (!proto::IsCanonicalAgentId(s)) {
      e.Error(400, "serial must be 1..63 of [a-z0-9-]");
      return;
    }
    Put(e, server, s, body);
  });
}

}  // namespace

void AddClaimRoutes(http::Router& router, ManagerServer& server) {
  router.Add("GET", "/api/v1/claims", [&server](http::Exchange& ex) { List(ex, server); });
  router.Add("PUT", "/api/v1/claims/{serial}",
             [&server](http::Exchange& ex) { Change(ex, server); });
  router.Add("DELETE", "/api/v1/claims/{serial}",
             [&server](http::Exchange& ex) { Change(ex, server); });
}

}  // namespace camtunnel::manager::admin
