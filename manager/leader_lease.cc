// See leader_lease.h.
#include "manager/leader_lease.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/log.h"

namespace camtunnel::manager {

LeaderLease::LeaderLease(runtime::Shard& shard, Store& store, std::string name, std::string holder,
                         uint64_t ttl_ms)
    : shard_(shard),
      store_(store),
      name_(std::move(name)),
      me_(std::move(holder)),
      ttl_ms_(ttl_ms) {}

LeaderLease::~LeaderLease() { *alive_ = false; }

void LeaderLease::Start() {
  timer_.set_callback([this] { Renew(); });
  Renew();
}

void LeaderLease::Release() {
  shard_.timers().Cancel(timer_);
  if (!held_) {
    return;
  }
  held_ = false;
  Update();
  // A lifetime of zero from now: the lease stays ours (same term) but has expired. Queued jobs
  // run before the store closes, so this reaches the database even at exit.
  store_.Write("lease", name_, [name = name_, me = me_](StoreConnection& c) {
    return c.AcquireLease(name, me, 0).status();
  });
}

bool LeaderLease::leading() const { return held_ && shard_.now_ms() < valid_until_ms_; }

void LeaderLease::Update() {
  const bool now_leading = leading();
  if (now_leading == was_leading_) {
    return;
  }
  was_leading_ = now_leading;
  if (now_leading) {
    ++counters_.gained;
  } else {
    ++counters_.lost;
  }
  runtime::LogEvent(
      runtime::LogLevel::kInfo, now_leading ? "leader_gained" : "leader_lost",
      {runtime::Kv("lease", name_), runtime::Kv("term", term_), runtime::Kv("holder", holder_)});
  if (on_change_) {
    on_change_(now_leading);
  }
}

void LeaderLease::Renew() {
  // Renewed every third of the lifetime: two renewals can fail (a slow database, a reconnect)
  // before the lease runs out.
  shard_.timers().Arm(timer_, shard_.now_ms(), ttl_ms_ / 3);
  Update();
  if (renewing_) {
    return;  // the last request has not been answered: the database is slow
  }
  renewing_ = true;
  const uint64_t asked_ms = shard_.now_ms();
  store_.Run<absl::StatusOr<Lease>>(
      name_,
      [name = name_, me = me_, ttl = static_cast<int64_t>(ttl_ms_)](StoreConnection& c) {
        return c.AcquireLease(name, me, ttl);
      },
      [this, alive = alive_, asked_ms](absl::StatusOr<Lease> lease) {
        if (!*alive) {
          return;
        }
        renewing_ = false;
        store_.Observe(lease.status());
        if (!lease.ok()) {
          // Still the leader until the last grant runs out (leading() checks the clock).
          ++counters_.renew_failures;
          Update();
          return;
        }
        held_ = lease->held;
        term_ = lease->term;
        holder_ = lease->holder;
        if (held_) {
          valid_until_ms_ = asked_ms + ttl_ms_;
        }
        Update();
      });
}

void LeaderLease::Fenced(std::string_view key,
                         absl::AnyInvocable<absl::Status(StoreConnection&)> action,
                         std::function<void(absl::Status)> done) {
  if (!leading()) {
    done(absl::FailedPreconditionError(absl::StrCat("not the leader (", name_, ")")));
    return;
  }
  store_.Run<absl::Status>(
      key,
      [name = name_, me = me_, term = term_,
       action = std::move(action)](StoreConnection& c) mutable {
        return c.Transaction([&]() -> absl::Status {
          if (absl::Status fence = c.CheckLease(name, me, term); !fence.ok()) {
            return fence;
          }
          return action(c);
        });
      },
      [this, alive = alive_, term = term_, done = std::move(done)](const absl::Status& st) {
        if (!*alive) {
          return;
        }
        store_.Observe(st);
        if (absl::IsFailedPrecondition(st) && term == term_) {
          // The store says another manager has the lease (we were stopped, or partitioned):
          // stop acting now rather than at the next renewal.
          ++counters_.fenced_out;
          held_ = false;
          Update();
        }
        done(st);
      });
}

}  // namespace camtunnel::manager
