// Work done once per deployment, however many managers share the database, runs on one leader:
// the Streamer health checks (and the denylist pushes a recovered Streamer needs) and retention.
// Leadership is a lease row in the store (StoreConnection::AcquireLease), renewed by its holder
// every third of its lifetime, on the database's clock, with a fencing term that rises each time
// it changes hands. A leader's write runs in one transaction with CheckLease (Fenced()), so a
// leader that was stopped or partitioned and came back cannot act on a term it lost.
//
// An advisory lock would not do: a stopped or partitioned leader keeps its session (and with it
// the lock) while the deployment waits, and a promoted standby has no locks at all.
//
// Between renewals the leader trusts its own monotonic clock: it stops acting at the moment the
// lease could have expired, counted from when it *asked* for the renewal (the database granted
// it no earlier), so a manager woken from SIGSTOP stops before it learns it lost.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "manager/store.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

struct LeaseCounters {
  uint64_t gained = 0;          // this manager became the leader
  uint64_t lost = 0;            // ... and stopped being it (expired, taken over, fenced out)
  uint64_t renew_failures = 0;  // the store could not be asked
  uint64_t fenced_out = 0;      // a leader's write refused because the term was no longer held
};

class LeaderLease {
 public:
  // `holder`: this manager's id (unique among the managers of a deployment).
  LeaderLease(runtime::Shard& shard, Store& store, std::string name, std::string holder,
              uint64_t ttl_ms);
  ~LeaderLease();
  LeaderLease(const LeaderLease&) = delete;
  LeaderLease& operator=(const LeaderLease&) = delete;

  void Start();
  // Stops renewing and lets the lease expire now (a clean shutdown): another manager takes over
  // at its next renewal instead of a lifetime later.
  void Release();

  // Whether this manager may act as the leader now.
  bool leading() const;
  int64_t term() const { return term_; }
  // The holder the store named last (this manager, another, or empty: unknown).
  const std::string& holder() const { return holder_; }
  const LeaseCounters& counters() const { return counters_; }

  // Called when leading() turns true or false (on the shard's thread).
  void set_on_change(std::function<void(bool leading)> fn) { on_change_ = std::move(fn); }

  // Runs `action` on the store in one transaction with the lease check. `done` (on the shard)
  // gets FAILED_PRECONDITION without running the action when this manager is not the leader, or
  // when the store says the term is no longer held (leadership is then given up at once).
  void Fenced(std::string_view key, absl::AnyInvocable<absl::Status(StoreConnection&)> action,
              std::function<void(absl::Status)> done);

 private:
  void Renew();
  // Re-evaluates leading() and reports a change.
  void Update();

  runtime::Shard& shard_;
  Store& store_;
  std::string name_;
  std::string me_;
  uint64_t ttl_ms_;
  bool held_ = false;
  uint64_t valid_until_ms_ = 0;  // shard clock
  int64_t term_ = 0;
  std::string holder_;
  bool was_leading_ = false;
  bool renewing_ = false;
  LeaseCounters counters_;
  std::function<void(bool)> on_change_;
  runtime::Timer timer_;
  // Cleared at destruction: a store result arriving later finds the lease gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace camtunnel::manager
