// Operators' commands to agents as rows of the store (PROTOCOL.md 10.6): recorded first, then
// delivered by whichever manager holds the agent's link, acknowledged by the agent, or expired
// with a clear failure when the agent does not link before the deadline. Nothing accepted is
// lost: a row stays queued (or sent, unacknowledged) until one of those happens, and it is
// offered again on every link-up of its agent.
//
// Delivery is fenced: the holder takes the row in the same transaction that checks the link
// registry still names it at its link's epoch (StoreConnection::TakeCommand), so a manager whose
// link was taken over cannot act for the agent.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "manager/store.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class ManagerServer;
class AgentLink;

struct CommandCounters {
  uint64_t queued = 0;
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t refused = 0;     // the agent's ACK said it could not act
  uint64_t duplicates = 0;  // the agent had acted on it already (a redelivery)
  uint64_t expired = 0;
};

class CommandDesk {
 public:
  // Every `sweep_ms`: expiry, and open rows of agents linked here offered again (the safety net
  // under the notifications of a shared PostgreSQL database).
  CommandDesk(ManagerServer& server, uint64_t sweep_ms);
  ~CommandDesk();
  CommandDesk(const CommandDesk&) = delete;
  CommandDesk& operator=(const CommandDesk&) = delete;

  void Start();

  // Records `command` (state queued) and offers it to the agent's link if this manager holds it.
  // `done` gets the row id, or the store's error.
  void Submit(CommandRecord command, std::function<void(absl::StatusOr<int64_t>)> done);
  // The command's row once it is over (acked, failed, expired) or at `wait_ms`, whichever comes
  // first; nullopt if the store cannot be read.
  void Await(int64_t id, uint64_t wait_ms, std::function<void(std::optional<CommandRecord>)> done);

  // A notification named command `id`, recorded by some manager (command_listener.h; the id is
  // a hint, never trusted): its row is read and offered if its agent is linked here.
  void Notified(int64_t id);
  // Notifications may have been lost (the listener's session was down): every open row of the
  // agents linked here is offered again.
  void Rescan();

  // `link` claimed its agent in the link registry: its pending commands are offered to it.
  void LinkClaimed(AgentLink& link);
  // The agent acknowledged command `id` with `outcome` on `link`.
  void Acked(AgentLink& link, uint64_t id, const std::string& outcome);
  // A command the agent cannot acknowledge (it lacks the capability) was written to its link.
  void SentWithoutAck(int64_t id);

  const CommandCounters& counters() const { return counters_; }

 private:
  // Takes `id` for the agent's local link, if this manager holds it, and sends it.
  void Offer(int64_t id, const std::string& agent_id);
  void Sweep();
  void PollWaiters();

  struct Waiter {
    int64_t id = 0;
    uint64_t deadline_ms = 0;  // shard clock
    std::function<void(std::optional<CommandRecord>)> done;
    bool asking = false;  // a read of its row is under way
  };

  ManagerServer& server_;
  uint64_t sweep_ms_;
  runtime::Timer sweep_;
  runtime::Timer poll_;
  bool polling_ = false;
  std::list<Waiter> waiters_;
  CommandCounters counters_;
  // Cleared at destruction: a store result arriving later finds the desk gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace camtunnel::manager
