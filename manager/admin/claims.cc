// Operator claims (docs/manager.md): GET /api/v1/claims lists them; PUT /api/v1/claims/{serial}
// with {"operator": id, "token": label token} records one; DELETE /api/v1/claims/{serial} drops
// it. The token is only ever stored as its salted hash: never listed, audited or logged.
#include "manager/claims.h"

#include <nlohmann/json.hpp>

#include "manager/admin/admin_routes.h"
#include "manager/admin/store_query.h"
#include "manager/manager_server.h"
#include "proto/http_query.h"
#include "proto/identifiers.h"

namespace camtunnel::manager::admin {
namespace {

using nlohmann::json;

// GET /api/v1/claims[?limit=N&cursor=SERIAL]: a page in serial order; next_cursor is null on the
// last page.
void List(http::Exchange& ex, ManagerServer& server) {
  const std::optional<proto::QueryParams> query = proto::QueryParams::Parse(ex.raw_query());
  const size_t limit = query ? PageLimit(*query).value_or(0) : 0;
  const std::string cursor(query ? query->Get("cursor").value_or("") : "");
  bool known = query.has_value();
  if (query) {
    for (const auto& [key, value] : query->pairs()) {
      known &= key == "limit" || (key == "cursor" && proto::IsCanonicalAgentId(value));
    }
  }
  if (limit == 0 || !known) {
    ex.Error(400, "query takes limit=1..1000 and cursor=<serial>");
    return;
  }
  using Claims = absl::StatusOr<std::vector<ClaimRecord>>;
  StoreJob<Claims>(
      ex, server, {}, [cursor, limit](StoreConnection& c) { return c.ListClaims(cursor, limit); },
      [&server = server, limit](http::Exchange& e, Claims claims) {
        if (!claims.ok()) {
          AnswerStoreError(e, server, claims.status());
          return;
        }
        json list = json::array();
        for (const ClaimRecord& c : *claims) {
          // Never the hash: it is as good as the token for an offline guess.
          list.push_back({{"serial", c.serial},
                          {"operator", c.operator_id},
                          {"created_at_ms", c.created_at_ms}});
        }
        json next = claims->size() == limit ? json(claims->back().serial) : json(nullptr);
        e.Json(200, json{{"claims", list}, {"next_cursor", next}}.dump() + "\n");
      });
}

// The record and its audit entry in one transaction.
absl::Status WithAudit(StoreConnection& c, const AuditEntry& entry,
                       const std::function<absl::Status()>& change) {
  return c.Transaction([&]() -> absl::Status {
    if (absl::Status st = change(); !st.ok()) {
      return st;
    }
    return c.Audit(entry);
  });
}

void Delete(http::Exchange& ex, ManagerServer& server, std::string_view serial) {
  using Was = absl::StatusOr<bool>;
  StoreJob<Was>(
      ex, server, serial,
      [serial = std::string(serial),
       entry = AuditEntry{.at_ms = ManagerServer::WallMs(),
                          .actor = "admin",
                          .action = "unclaim",
                          .subject = std::string(serial)}](StoreConnection& c) -> Was {
        bool was = false;
        absl::Status st = WithAudit(c, entry, [&]() -> absl::Status {
          auto deleted = c.DeleteClaim(serial);
          was = deleted.ok() && *deleted;
          return deleted.status();
        });
        if (!st.ok()) {
          return st;
        }
        return was;
      },
      [&server = server, serial = std::string(serial)](http::Exchange& e, Was was) {
        if (!was.ok()) {
          AnswerStoreError(e, server, was.status());
          return;
        }
        e.Json(*was ? 200 : 404, json{{"serial", serial}, {"was_claimed", *was}}.dump() + "\n");
      });
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
  StoreJob<absl::Status>(
      ex, server, serial,
      [claim = MakeClaim(serial, op, token, now), entry = AuditEntry{.at_ms = now,
                                                                     .actor = "admin",
                                                                     .action = "claim",
                                                                     .subject = std::string(serial),
                                                                     .detail = op}](
          StoreConnection& c) { return WithAudit(c, entry, [&] { return c.PutClaim(claim); }); },
      [&server = server, serial = std::string(serial), op](http::Exchange& e,
                                                           const absl::Status& st) {
        if (!st.ok()) {
          AnswerStoreError(e, server, st);
          return;
        }
        e.Json(200, json{{"serial", serial}, {"operator", op}}.dump() + "\n");
      });
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
  ex.ReadBody(kMaxBody, [&server = server](http::Exchange& e, std::string_view body) {
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
  router.Add("GET", "/api/v1/claims", [&server = server](http::Exchange& ex) { List(ex, server); });
  router.Add("PUT", "/api/v1/claims/{serial}",
             [&server = server](http::Exchange& ex) { Change(ex, server); });
  router.Add("DELETE", "/api/v1/claims/{serial}",
             [&server = server](http::Exchange& ex) { Change(ex, server); });
}

}  // namespace camtunnel::manager::admin
