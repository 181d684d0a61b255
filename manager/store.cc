// See store.h.
#include "manager/store.h"

#include <functional>

#include "runtime/log.h"

namespace camtunnel::manager {

absl::StatusOr<std::unique_ptr<Store>> Store::Open(runtime::Shard& shard, const std::string& spec,
                                                   const SecretSealer* sealer, size_t connections) {
  std::unique_ptr<Store> store(new Store(shard));
  const size_t count = IsPostgresSpec(spec) ? std::max<size_t>(connections, 1) : 1;
  for (size_t i = 0; i < count; ++i) {
    auto connection = OpenStoreConnection(spec, sealer);
    if (!connection.ok()) {
      return connection.status();
    }
    store->backend_ = std::string((*connection)->backend());
    auto worker = std::make_unique<Worker>();
    worker->connection = std::move(*connection);
    store->workers_.push_back(std::move(worker));
  }
  for (auto& worker : store->workers_) {
    Worker* w = worker.get();
    Store* self = store.get();
    w->thread = std::thread([self, w] { self->Loop(*w); });
  }
  return store;
}

Store::~Store() {
  alive_->store(false);
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->stopping = true;
    }
    w->cv.notify_one();
  }
  for (auto& w : workers_) {
    w->thread.join();
  }
}

void Store::Submit(std::string_view key, absl::AnyInvocable<void(StoreConnection&)> work,
                   absl::AnyInvocable<void()> deliver) {
  const size_t index = key.empty() ? next_worker_.fetch_add(1, std::memory_order_relaxed)
                                   : std::hash<std::string_view>()(key);
  Worker& w = *workers_[index % workers_.size()];
  pending_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.queue.push_back({std::move(work), std::move(deliver)});
  }
  w.cv.notify_one();
}

void Store::Loop(Worker& w) {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(w.mu);
      w.cv.wait(lock, [&w] { return w.stopping || !w.queue.empty(); });
      if (w.queue.empty()) {
        return;  // stopping, and every queued job has run
      }
      job = std::move(w.queue.front());
      w.queue.pop_front();
    }
    job.work(*w.connection);
    pending_.fetch_sub(1, std::memory_order_relaxed);
    jobs_done_.fetch_add(1, std::memory_order_relaxed);
    if (job.deliver) {
      shard_.Post([alive = alive_, deliver = std::make_shared<absl::AnyInvocable<void()>>(
                                       std::move(job.deliver))]() mutable {
        if (alive->load()) {
          (*deliver)();
        }
      });
    }
  }
}

void Store::Write(std::string_view op, std::string_view key,
                  absl::AnyInvocable<absl::Status(StoreConnection&)> work) {
  Run<absl::Status>(key, std::move(work),
                    [this, op = std::string(op)](const absl::Status& st) { CheckWrite(op, st); });
}

void Store::CheckWrite(std::string_view op, const absl::Status& status) {
  Observe(status);
  if (status.ok()) {
    return;
  }
  auto it = write_errors_.find(op);
  if (it == write_errors_.end()) {
    it = write_errors_.emplace(std::string(op), 0).first;
  }
  ++it->second;
  runtime::LogEvent(runtime::LogLevel::kError, "store_write_failed",
                    {runtime::Kv("op", op), runtime::Kv("status", status.ToString())});
}

}  // namespace camtunnel::manager
