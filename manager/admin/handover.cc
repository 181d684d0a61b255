// POST /api/v1/handover: a separate activation server hands an activation over (PROTOCOL.md
// section 10.4). Authenticated by its MAC (the hand-over key), not the bearer token: the
// activation server holds only the hand-over key. Without a hand-over service the path does
// not exist.
#include "proto/handover.h"

#include "manager/admin/admin_routes.h"
#include "manager/handover_service.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

void AddHandoverRoutes(http::Router& router, ManagerServer& server) {
  router.Add(
      "POST", proto::kHandoverPath,
      [&server = server](http::Exchange& ex) {
        if (server.handover() == nullptr) {
          ex.Error(404, "not found");
          return;
        }
        ex.ReadBody(kMaxBody, [&server = server](http::Exchange& e, std::string_view body) {
          auto mac = e.head().headers.Find(proto::kHandoverMacHeader);
          server.handover()->Handle(
              mac ? *mac : std::string_view(), body, ManagerServer::WallMs(),
              [reply = e.Later()](const HandoverAnswer& a) { reply.Json(a.status, a.body); });
        });
      },
      {.public_route = true});
}

}  // namespace camtunnel::manager::admin
