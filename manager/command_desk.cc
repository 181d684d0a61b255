// See command_desk.h.
#include "manager/command_desk.h"

#include "manager/agent_link.h"
#include "manager/manager_server.h"
#include "proto/manager_command.h"
#include "runtime/log.h"

namespace camtunnel::manager {
namespace {

// How often a caller waiting for an outcome re-reads its row: the ACK usually lands within a
// round trip, and the admin API is not a hot path.
constexpr uint64_t kPollMs = 100;

}  // namespace

CommandDesk::CommandDesk(ManagerServer& server, uint64_t sweep_ms)
    : server_(server), sweep_ms_(sweep_ms) {
  sweep_.set_callback([this] { Sweep(); });
  poll_.set_callback([this] {
    polling_ = false;
    PollWaiters();
  });
}

CommandDesk::~CommandDesk() {
  *alive_ = false;
  server_.shard().timers().Cancel(sweep_);
  server_.shard().timers().Cancel(poll_);
}

void CommandDesk::Start() { Sweep(); }

void CommandDesk::Submit(CommandRecord command, std::function<void(absl::StatusOr<int64_t>)> done) {
  const std::string agent_id = command.agent_id;
  server_.store().Run<absl::StatusOr<int64_t>>(
      agent_id,
      [command = std::move(command)](StoreConnection& c) { return c.EnqueueCommand(command); },
      [this, alive = alive_, agent_id, done = std::move(done)](absl::StatusOr<int64_t> id) {
        if (!*alive) {
          return;
        }
        server_.store().Observe(id.status());
        if (id.ok()) {
          ++counters_.queued;
          Offer(*id, agent_id);
        }
        done(id);
      });
}

void CommandDesk::Offer(int64_t id, const std::string& agent_id) {
  AgentLink* link = server_.FindLink(agent_id);
  if (link == nullptr || link->epoch() == 0 || link->AwaitingAck(id)) {
    // Not here (or not claimed yet): its holder, or its next link-up, delivers it. Or sent on
    // this very link already: its ACK is awaited.
    return;
  }
  const int64_t epoch = link->epoch();
  server_.store().Run<absl::StatusOr<std::optional<CommandRecord>>>(
      agent_id,
      [id, manager = server_.config().manager_id, epoch](StoreConnection& c) {
        return c.TakeCommand(id, manager, epoch, ManagerServer::WallMs());
      },
      [this, alive = alive_, agent_id, epoch](absl::StatusOr<std::optional<CommandRecord>> taken) {
        if (!*alive || !taken.ok() || !taken->has_value()) {
          return;
        }
        // The link may have ended meanwhile: the row stays "sent" and is offered again at the
        // agent's next link-up (the agent acknowledges a redelivery without acting twice).
        AgentLink* link = server_.FindLink(agent_id);
        if (link != nullptr && link->epoch() == epoch && !link->AwaitingAck((*taken)->id)) {
          ++counters_.sent;
          link->Deliver(**taken);
        }
      });
}

void CommandDesk::Notified(int64_t id) {
  if (server_.live_links() == 0) {
    return;  // nobody to deliver to: the row is not even read
  }
  server_.store().Run<absl::StatusOr<std::optional<CommandRecord>>>(
      {}, [id](StoreConnection& c) { return c.FindCommand(id); },
      [this, alive = alive_](absl::StatusOr<std::optional<CommandRecord>> row) {
        if (!*alive || !row.ok() || !row->has_value() || IsFinal((*row)->state)) {
          return;
        }
        Offer((*row)->id, (*row)->agent_id);
      });
}

void CommandDesk::Rescan() {
  server_.store().Run<absl::StatusOr<std::vector<CommandRecord>>>(
      {},
      [manager = server_.config().manager_id](StoreConnection& c) {
        return c.PendingCommands({}, manager, ManagerServer::WallMs());
      },
      [this, alive = alive_](absl::StatusOr<std::vector<CommandRecord>> open) {
        if (!*alive || !open.ok()) {
          return;
        }
        for (const CommandRecord& c : *open) {
          Offer(c.id, c.agent_id);
        }
      });
}

void CommandDesk::LinkClaimed(AgentLink& link) {
  const std::string& agent_id = link.agent_id();  // copied into the callbacks
  server_.store().Run<absl::StatusOr<std::vector<CommandRecord>>>(
      agent_id,
      [agent_id](StoreConnection& c) {
        return c.PendingCommands(agent_id, {}, ManagerServer::WallMs());
      },
      [this, alive = alive_, agent_id](absl::StatusOr<std::vector<CommandRecord>> pending) {
        if (!*alive || !pending.ok()) {
          return;
        }
        for (const CommandRecord& c : *pending) {
          Offer(c.id, agent_id);
        }
      });
}

void CommandDesk::Acked(AgentLink& link, uint64_t id, const std::string& outcome) {
  const bool refused = outcome.starts_with(proto::kAckRefusedPrefix);
  if (refused) {
    ++counters_.refused;
  } else if (outcome == proto::kAckDuplicate) {
    ++counters_.duplicates;
  } else {
    ++counters_.acked;
  }
  runtime::LogEvent(refused ? runtime::LogLevel::kWarning : runtime::LogLevel::kInfo,
                    "command_acknowledged",
                    {runtime::Kv("agent", link.agent_id()), runtime::Kv("command", id),
                     runtime::Kv("outcome", outcome)});
  server_.store().Write("command", link.agent_id(), [id, outcome, refused](StoreConnection& c) {
    return c
        .FinishCommand(static_cast<int64_t>(id),
                       refused ? CommandState::kFailed : CommandState::kAcked, outcome,
                       ManagerServer::WallMs())
        .status();
  });
}

void CommandDesk::SentWithoutAck(int64_t id) {
  ++counters_.acked;
  server_.store().Write("command", {}, [id](StoreConnection& c) {
    return c
        .FinishCommand(id, CommandState::kAcked, "sent (the agent does not acknowledge commands)",
                       ManagerServer::WallMs())
        .status();
  });
}

void CommandDesk::Await(int64_t id, uint64_t wait_ms,
                        std::function<void(std::optional<CommandRecord>)> done) {
  waiters_.push_back(
      {.id = id, .deadline_ms = server_.shard().now_ms() + wait_ms, .done = std::move(done)});
  PollWaiters();
}

void CommandDesk::PollWaiters() {
  const uint64_t now = server_.shard().now_ms();
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->asking) {
      continue;
    }
    it->asking = true;
    const int64_t id = it->id;
    server_.store().Run<absl::StatusOr<std::optional<CommandRecord>>>(
        {}, [id](StoreConnection& c) { return c.FindCommand(id); },
        [this, alive = alive_, it, now](absl::StatusOr<std::optional<CommandRecord>> row) {
          if (!*alive) {
            return;
          }
          it->asking = false;
          const bool over = row.ok() && row->has_value() && IsFinal((*row)->state);
          if (!row.ok() || !row->has_value() || over || now >= it->deadline_ms) {
            auto done = std::move(it->done);
            waiters_.erase(it);
            done(row.ok() ? *row : std::nullopt);
          }
        });
  }
  if (!waiters_.empty() && !polling_) {
    polling_ = true;
    server_.shard().timers().Arm(poll_, now, kPollMs);
  }
}

// Each sweep expires what is past its deadline (an idempotent state change, safe for every
// manager of a deployment to run) and offers again every open row of an agent whose link this
// manager holds: a command recorded by another manager sharing the database reaches its agent
// at once through a notification (Notified), or within one sweep when that was lost.
void CommandDesk::Sweep() {
  struct Result {
    absl::StatusOr<uint64_t> expired;
    absl::StatusOr<std::vector<CommandRecord>> open;
  };
  server_.store().Run<Result>(
      {},
      [manager = server_.config().manager_id](StoreConnection& c) {
        const int64_t now = ManagerServer::WallMs();
        return Result{.expired = c.ExpireCommands(now),
                      .open = c.PendingCommands({}, manager, now)};
      },
      [this, alive = alive_](Result r) {
        if (!*alive) {
          return;
        }
        server_.store().Observe(r.expired.status());
        if (r.expired.ok() && *r.expired > 0) {
          counters_.expired += *r.expired;
          runtime::LogEvent(runtime::LogLevel::kWarning, "commands_expired",
                            {runtime::Kv("commands", *r.expired)});
        }
        if (r.open.ok()) {
          for (const CommandRecord& c : *r.open) {
            Offer(c.id, c.agent_id);
          }
        }
        server_.shard().timers().Arm(sweep_, server_.shard().now_ms(), sweep_ms_);
      });
}

}  // namespace camtunnel::manager
