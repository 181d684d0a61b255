// Admin handlers read and write the store on its workers (manager/store.h): these run a job and
// answer the exchange with its result, if the client still waits for it.
#pragma once

#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "http/exchange.h"
#include "manager/manager_server.h"

namespace camtunnel::manager::admin {

// 503 with Retry-After when the database is unreachable (the caller may retry), else 500.
void AnswerStoreError(http::Exchange& ex, ManagerServer& server, const absl::Status& status);

// Runs `job` on a store worker (ordered with other jobs of `key`), then `answer` on the shard's
// thread with the exchange and the job's result; nothing if the connection closed meanwhile.
template <typename T>
void StoreJob(http::Exchange& ex, ManagerServer& server, std::string_view key,
              absl::AnyInvocable<T(StoreConnection&)> job,
              absl::AnyInvocable<void(http::Exchange&, T)> answer) {
  server.store().Run<T>(key, std::move(job),
                        [reply = ex.Later(), answer = std::move(answer)](T result) mutable {
                          if (http::Exchange* e = reply.exchange()) {
                            answer(*e, std::move(result));
                          }
                        });
}

// The {id} agent's record for a handler that needs it: 400 for a malformed id, then `then` with
// the record, or the answer for an unknown agent (404) or a store failure.
void WithAgent(http::Exchange& ex, ManagerServer& server,
               absl::AnyInvocable<void(http::Exchange&, const AgentRecord&)> then);

}  // namespace camtunnel::manager::admin
