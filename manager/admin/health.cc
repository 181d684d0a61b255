// /healthz (any method): the manager runs its loop. No bearer token (a probe).
#include "manager/admin/admin_routes.h"

namespace camtunnel::manager::admin {

void AddHealthRoutes(http::Router& router, ManagerServer& /*server*/) {
  router.Add("", "/healthz", [](http::Exchange& ex) { ex.Json(200, R"({"ok":true})"); },
             {.public_route = true});
}

}  // namespace camtunnel::manager::admin
