// The manager's state, as its ring thread uses it: every query runs on a store worker thread
// with its own connection (store_connection.h), and its result comes back to the ring through
// Shard::Post. The ring never waits for a database, whichever backend: a slow fsync or a
// PostgreSQL failover delays answers, never heartbeats or health checks.
//
// Order: jobs with the same key (an agent id, a serial) run in submission order on one worker,
// so an agent's writes are never reordered. SQLite has one worker (one writer per file anyway);
// PostgreSQL several.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "manager/store_connection.h"
#include "runtime/shard.h"

namespace camtunnel::manager {

class Store {
 public:
  // Opens `connections` connections to `spec` (OpenStoreConnection; SQLite always 1), from the
  // calling thread: a database that cannot be opened fails the start, not the first query.
  // Agents' secrets are sealed with `sealer` (null: stored clear), which must outlive the store.
  static absl::StatusOr<std::unique_ptr<Store>> Open(runtime::Shard& shard, const std::string& spec,
                                                     const SecretSealer* sealer,
                                                     size_t connections = 4);
  // Runs the queued jobs to the end, then joins the workers. Results not yet delivered to the
  // ring are dropped.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Runs `work` on a worker; `done` gets its result on the shard's thread (never inline).
  template <typename T>
  void Run(std::string_view key, absl::AnyInvocable<T(StoreConnection&)> work,
           absl::AnyInvocable<void(T)> done) {
    auto result = std::make_shared<std::optional<T>>();
    Submit(
        key,
        [result, work = std::move(work)](StoreConnection& c) mutable { result->emplace(work(c)); },
        [result, done = std::move(done)]() mutable { done(std::move(**result)); });
  }

  // A write the caller goes on without (an audit entry, an activation attempt's record, a
  // location): a failure is never dropped silently, it goes to CheckWrite(op).
  void Write(std::string_view op, std::string_view key,
             absl::AnyInvocable<absl::Status(StoreConnection&)> work);

  // Blocks the calling thread until `work` ran on a worker. For start-up, tools and tests: never
  // from the ring.
  template <typename T>
  T Sync(absl::AnyInvocable<T(StoreConnection&)> work) {
    std::optional<T> result;
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    Submit(
        {},
        [&](StoreConnection& c) {
          T value = work(c);
          std::lock_guard<std::mutex> lock(mu);
          result.emplace(std::move(value));
          finished = true;
          cv.notify_one();
        },
        nullptr);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return finished; });
    return std::move(*result);
  }

  // A failed write is logged (event store_write_failed with `op` and the status, rate-limited
  // like every event) and counted by `op`, a short fixed name ("audit"), exported as
  // camtunnel_manager_store_write_errors_total. On the shard's thread.
  void CheckWrite(std::string_view op, const absl::Status& status);
  const std::map<std::string, uint64_t, std::less<>>& write_errors() const { return write_errors_; }

  std::string_view backend() const { return backend_; }
  // False while the last result seen (a write's, or a Ping's the manager makes periodically)
  // said the database is unreachable (UNAVAILABLE): /readyz and the metrics say so.
  void Observe(const absl::Status& status) {
    reachable_.store(!absl::IsUnavailable(status), std::memory_order_relaxed);
  }
  bool reachable() const { return reachable_.load(std::memory_order_relaxed); }
  // Jobs queued and not yet finished, over all workers. Thread-safe.
  size_t pending() const { return pending_.load(std::memory_order_relaxed); }
  uint64_t jobs_done() const { return jobs_done_.load(std::memory_order_relaxed); }

 private:
  struct Job {
    absl::AnyInvocable<void(StoreConnection&)> work;
    absl::AnyInvocable<void()> deliver;  // on the shard's thread; may be null
  };
  struct Worker {
    std::unique_ptr<StoreConnection> connection;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;
    bool stopping = false;
    std::thread thread;
  };

  explicit Store(runtime::Shard& shard) : shard_(shard) {}
  void Submit(std::string_view key, absl::AnyInvocable<void(StoreConnection&)> work,
              absl::AnyInvocable<void()> deliver);
  void Loop(Worker& worker);

  runtime::Shard& shard_;
  std::string backend_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> next_worker_{0};
  std::atomic<size_t> pending_{0};
  std::atomic<uint64_t> jobs_done_{0};
  std::atomic<bool> reachable_{true};
  // Cleared at destruction: a result posted to the shard after that is dropped.
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::map<std::string, uint64_t, std::less<>> write_errors_;
};

}  // namespace camtunnel::manager
