// Operators' commands (PROTOCOL.md 10.6; manager/command_desk.h):
//   POST /api/v1/agents/{id}/deactivate|restart|move?streamer=URL[&wait_ms=N]
//   GET  /api/v1/commands/{id}
// A command is recorded as a row first, then delivered by whichever manager holds the agent's
// link; the caller gets its outcome: 200 acknowledged by the agent, 409 refused or expired (the
// row's outcome says why), 202 still under way after wait_ms (default 10000, at most 60000;
// GET /api/v1/commands/{id} follows it). A command for an agent that no manager holds a link of
// is answered 202 at once: it waits for the agent until its deadline, then expires.
// deactivate is recorded in the agent's state before anything is sent: the agent stays refused
// even if it never hears of it.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "manager/admin/admin_routes.h"
#include "manager/admin/store_query.h"
#include "manager/agent_link.h"
#include "manager/manager_server.h"
#include "proto/http_query.h"

namespace camtunnel::manager::admin {
namespace {

using nlohmann::json;

constexpr uint64_t kDefaultWaitMs = 10000;
constexpr uint64_t kMaxWaitMs = 60000;

json CommandJson(const CommandRecord& c) {
  return {{"id", c.id},
          {"agent", c.agent_id},
          {"kind", c.kind},
          {"argument", c.argument},
          {"requested_by", c.requested_by},
          {"state", std::string(CommandStateName(c.state))},
          {"outcome", c.outcome},
          {"manager", c.manager_id},
          {"created_at_ms", c.created_at_ms},
          {"deadline_ms", c.deadline_ms},
          {"updated_at_ms", c.updated_at_ms}};
}

int StatusFor(CommandState s) {
  switch (s) {
    case CommandState::kAcked:
      return 200;
    case CommandState::kFailed:
    case CommandState::kExpired:
      return 409;
    default:
      return 202;
  }
}

// Answers with the row once it is over or `wait_ms` passed; `extra` fields go beside it.
void AnswerWhenDone(http::Exchange& ex, ManagerServer& server, int64_t id, uint64_t wait_ms,
                    json extra) {
  server.commands().Await(id, wait_ms,
                          [&server = server, reply = ex.Later(),
                           extra = std::move(extra)](std::optional<CommandRecord> row) mutable {
                            http::Exchange* e = reply.exchange();
                            if (e == nullptr) {
                              return;
                            }
                            if (!row) {
                              AnswerStoreError(*e, server,
                                               absl::UnavailableError("command row unreadable"));
                              return;
                            }
                            extra["command"] = CommandJson(*row);
                            e->Json(StatusFor(row->state), extra.dump() + "\n");
                          });
}

// Records the command, then: 202 at once when no manager holds the agent's link, else the
// outcome within wait_ms.
void Submit(http::Exchange& ex, ManagerServer& server, CommandRecord command, uint64_t wait_ms,
            json extra = json::object()) {
  const std::string agent = command.agent_id;
  server.commands().Submit(
      std::move(command), [&server = server, reply = ex.Later(), agent, wait_ms,
                           extra = std::move(extra)](absl::StatusOr<int64_t> id) mutable {
        http::Exchange* e = reply.exchange();
        if (e == nullptr) {
          return;
        }
        if (!id.ok()) {
          AnswerStoreError(*e, server, id.status());
          return;
        }
        StoreJob<absl::StatusOr<std::optional<LinkClaim>>>(
            *e, server, agent, [agent](StoreConnection& c) { return c.FindLink(agent); },
            [&server = server, id = *id, wait_ms, extra = std::move(extra)](
                http::Exchange& ex2, absl::StatusOr<std::optional<LinkClaim>> holder) mutable {
              const bool linked = !holder.ok() || holder->has_value();
              extra["linked"] = linked;
              AnswerWhenDone(ex2, server, id, linked ? wait_ms : 0, std::move(extra));
            });
      });
}

// The state change and its audit entry, in one transaction.
absl::Status DeactivateRecord(StoreConnection& c, const std::string& id, const AuditEntry& entry) {
  return c.Transaction([&]() -> absl::Status {
    if (absl::Status st = c.SetState(id, AgentState::kDeactivated); !st.ok()) {
      return st;
    }
    return c.Audit(entry);
  });
}

void Deactivate(http::Exchange& ex, ManagerServer& server, const AgentRecord& r,
                CommandRecord command, uint64_t wait_ms) {
  const std::string id = r.agent_id;
  AuditEntry entry{.at_ms = ManagerServer::WallMs(),
                   .actor = "admin",
                   .action = "deactivate",
                   .subject = id,
                   .detail = server.FindLink(id) != nullptr ? "linked here" : "not linked here"};
  StoreJob<absl::Status>(
      ex, server, id, [id, entry](StoreConnection& c) { return DeactivateRecord(c, id, entry); },
      [&server = server, id, was_assigned = r.streamer_url, command = std::move(command), wait_ms](
          http::Exchange& e, const absl::Status& st) mutable {
        if (!st.ok()) {
          AnswerStoreError(e, server, st);
          return;
        }
        AgentLink* link = server.FindLink(id);
        server.load().Moved(link != nullptr ? link->assigned_url() : was_assigned, {});
        // Its keys still verify at the Streamers until they expire: revoke them there now.
        if (server.revocations() != nullptr) {
          server.revocations()->Revoke(id);
        }
        Submit(e, server, std::move(command), wait_ms, json{{"deactivated", true}});
      });
}

void Audit(ManagerServer& server, const std::string& id, std::string_view action,
           std::string detail = {}) {
  server.store().Write("audit", id,
                       [entry = AuditEntry{.at_ms = ManagerServer::WallMs(),
                                           .actor = "admin",
                                           .action = std::string(action),
                                           .subject = id,
                                           .detail = std::move(detail)}](StoreConnection& c) {
                         return c.Audit(entry);
                       });
}

void Command(http::Exchange& ex, ManagerServer& server) {
  const std::string_view kind = ex.param("command");
  if (kind != "deactivate" && kind != "restart" && kind != "move") {
    ex.Error(404, "commands: deactivate, restart, move");
    return;
  }
  const std::optional<proto::QueryParams> query = proto::QueryParams::Parse(ex.raw_query());
  uint64_t wait_ms = kDefaultWaitMs;
  std::string url;
  bool ok = query.has_value();
  if (query) {
    for (const auto& [key, value] : query->pairs()) {
      if (key == "wait_ms") {
        ok &= absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &wait_ms) &&
              wait_ms <= kMaxWaitMs;
      } else if (key == "streamer" && kind == "move") {
        url = value;
      } else {
        ok = false;
      }
    }
  }
  if (!ok) {
    ex.Error(400, "query takes wait_ms=0..60000 (and streamer=URL for move)");
    return;
  }
  if (kind == "move" && !server.pool().Find(url)) {
    ex.Error(400, "streamer= must name a configured Streamer URL");
    return;
  }
  WithAgent(ex, server,
            [&server = server, kind = std::string(kind), url, wait_ms](http::Exchange& e,
                                                                       const AgentRecord& r) {
              const int64_t now = ManagerServer::WallMs();
              CommandRecord command{
                  .agent_id = r.agent_id,
                  .kind = kind == "move" ? "switch" : kind,
                  .argument = url,
                  .requested_by = "admin",
                  .created_at_ms = now,
                  .deadline_ms = now + static_cast<int64_t>(server.config().command_ttl_ms)};
              if (kind == "deactivate") {
                Deactivate(e, server, r, std::move(command), wait_ms);
                return;
              }
              if (r.state != AgentState::kActive) {
                e.Error(409, "agent deactivated");
                return;
              }
              Audit(server, r.agent_id, kind, url);
              Submit(e, server, std::move(command), wait_ms);
            });
}

void Show(http::Exchange& ex, ManagerServer& server) {
  int64_t id = 0;
  const std::string_view raw = ex.param("id");
  if (!absl::SimpleAtoi(absl::string_view(raw.data(), raw.size()), &id) || id <= 0) {
    ex.Error(400, "not a command id");
    return;
  }
  using Row = absl::StatusOr<std::optional<CommandRecord>>;
  StoreJob<Row>(
      ex, server, {}, [id](StoreConnection& c) { return c.FindCommand(id); },
      [&server = server](http::Exchange& e, Row row) {
        if (!row.ok()) {
          AnswerStoreError(e, server, row.status());
        } else if (!row->has_value()) {
          e.Error(404, "unknown command");
        } else {
          e.Json(200, json{{"command", CommandJson(**row)}}.dump() + "\n");
        }
      });
}

}  // namespace

void AddCommandRoutes(http::Router& router, ManagerServer& server) {
  router.Add("POST", "/api/v1/agents/{id}/{command}",
             [&server = server](http::Exchange& ex) { Command(ex, server); });
  router.Add("GET", "/api/v1/commands/{id}",
             [&server = server](http::Exchange& ex) { Show(ex, server); });
}

}  // namespace camtunnel::manager::admin
