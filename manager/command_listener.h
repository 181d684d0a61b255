// Immediate delivery of operators' commands across managers sharing a PostgreSQL database: a
// session of its own that LISTENs on the channel EnqueueCommand notifies
// (PostgresConnection::kCommandChannel), on a thread of its own (a session waiting for
// notifications would otherwise hold a store worker, and the ring never waits on a database).
// Each notified id goes to the shard, where the command desk offers the row if this manager holds
// the agent's link (CommandDesk::Notified). The one-second sweep stays the safety net.
//
// The payload is never trusted: any role that can connect may NOTIFY. It is only a hint naming a
// row; the row is read again and taken in the transaction that checks this manager's link epoch
// (StoreConnection::TakeCommand). A payload that is not a positive decimal id is counted and
// ignored.
//
// Notifications sent while the session is down are lost: a lost session reconnects with backoff
// (100 ms doubling to 5 s, jittered), with the store's connection parameters
// (postgres_conninfo.h), and every time it listens again (the first time too) the desk re-reads
// the open rows of the agents linked here (CommandDesk::Rescan).
//
// Needs a session that stays the manager's own: a transaction-pooling proxy (pgbouncer
// pool_mode=transaction) silently drops LISTEN.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "manager/postgres_conninfo.h"
#include "runtime/shard.h"

struct pg_conn;

namespace camtunnel::manager {

struct CommandListenerCounters {
  uint64_t notifications = 0;  // every notification received, bad ones included
  uint64_t bad_payloads = 0;   // not a positive decimal id: ignored
  uint64_t reconnects = 0;     // sessions listening again after the first
  bool up = false;             // listening now
};

// How long the listener waits before connecting again: `first_ms`, doubling up to `max_ms`.
struct CommandListenerBackoff {
  uint64_t first_ms = 100;
  uint64_t max_ms = 5000;
};

class CommandListener {
 public:
  struct Handlers {
    // A command row was recorded by some manager: its id (a hint, see above).
    std::function<void(int64_t id)> command;
    // The session listens (again): whatever was notified meanwhile is lost, pending rows are to
    // be re-read.
    std::function<void()> listening;
  };

  // Starts the thread, which connects in the background (a database that cannot be reached is
  // retried, never an error here). Handlers run on `shard`'s thread (Shard::Post): start it once
  // the shard runs, and destroy it on the shard's thread or after the shard stopped running.
  // INVALID_ARGUMENT for a conninfo libpq cannot parse.
  static absl::StatusOr<std::unique_ptr<CommandListener>> Start(
      runtime::Shard& shard, const std::string& conninfo, Handlers handlers,
      CommandListenerBackoff backoff = {});
  // Wakes the thread and joins it; no handler runs after this. Waiting for notifications, for
  // LISTEN's answer or between attempts, the thread wakes at once; in the middle of connecting
  // it finishes that attempt first (libpq's connect_timeout, 5 s by default, per host).
  ~CommandListener();
  CommandListener(const CommandListener&) = delete;
  CommandListener& operator=(const CommandListener&) = delete;

  // Thread-safe.
  CommandListenerCounters counters() const;

 private:
  CommandListener(runtime::Shard& shard, PgConnectParams params, Handlers handlers,
                  CommandListenerBackoff backoff, int wake_fd);
  void Loop();
  // Hands notifications to the shard until the session is lost (returns why) or the listener
  // stops (nullopt).
  std::optional<std::string> Receive(pg_conn* conn);
  void TakeNotifications(pg_conn* conn);
  // Runs `fn` on the shard unless this listener is destroyed by then.
  void Post(std::function<void()> fn);

  runtime::Shard& shard_;
  const PgConnectParams params_;
  const Handlers handlers_;
  const CommandListenerBackoff backoff_;
  // An eventfd in every poll of the thread: written once to stop it.
  const int wake_fd_;
  std::thread thread_;
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::atomic<uint64_t> notifications_{0};
  std::atomic<uint64_t> bad_payloads_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<bool> up_{false};
};

}  // namespace camtunnel::manager
