// See store_query.h.
#include "manager/admin/store_query.h"

#include "absl/strings/numbers.h"
#include "manager/admin/admin_routes.h"
#include "proto/http_answer.h"
#include "proto/identifiers.h"

namespace camtunnel::manager::admin {

void AnswerStoreError(http::Exchange& ex, ManagerServer& server, const absl::Status& status) {
  server.store().Observe(status);
  if (absl::IsUnavailable(status)) {
    const proto::HeaderField retry[] = {{"Retry-After", "5"}};
    ex.Error(503, "state database unavailable", retry);
    return;
  }
  ex.Error(500, "state database error");
}

}  // namespace camtunnel::manager::admin

namespace camtunnel::manager::admin {

// The agent's record for a handler that needs it: 400 for a malformed id, then `then` with the
// record, or the answer for an unknown agent (404) or a store failure.
void WithAgent(http::Exchange& ex, ManagerServer& server,
               absl::AnyInvocable<void(http::Exchange&, const AgentRecord&)> then) {
  const std::string id(ex.param("id"));
  if (!proto::IsCanonicalAgentId(id)) {
    ex.Error(400, "not a canonical agent id");
    return;
  }
  StoreJob<absl::StatusOr<std::optional<AgentRecord>>>(
      ex, server, id, [id](StoreConnection& c) { return c.FindAgent(id); },
      [&server = server, then = std::move(then)](
          http::Exchange& e, absl::StatusOr<std::optional<AgentRecord>> agent) mutable {
        if (!agent.ok()) {
          AnswerStoreError(e, server, agent.status());
        } else if (!agent->has_value()) {
          e.Error(404, "unknown agent");
        } else {
          then(e, **agent);
        }
      });
}

std::optional<size_t> PageLimit(const proto::QueryParams& query) {
  const std::optional<std::string_view> raw = query.Get("limit");
  if (!raw) {
    return kDefaultPage;
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(absl::string_view(raw->data(), raw->size()), &n) || n < 1 ||
      n > kMaxListed) {
    return std::nullopt;
  }
  return static_cast<size_t>(n);
}

}  // namespace camtunnel::manager::admin
