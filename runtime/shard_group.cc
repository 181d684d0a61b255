// See shard_group.h.
#include "runtime/shard_group.h"

#include <atomic>
#include <cstring>
#include <latch>
#include <string>

namespace camtunnel::runtime {

ShardGroup::~ShardGroup() { Stop(); }

absl::Status ShardGroup::Start(unsigned n, const ShardOptions& options,
                               std::function<void(Shard&)> setup) {
  if (n == 0 || !shards_.empty()) {
    return absl::InvalidArgumentError("a shard group starts once, with at least one shard");
  }
  for (unsigned i = 0; i < n; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  queues_.resize(static_cast<size_t>(n) * n);
  for (unsigned from = 0; from < n; ++from) {
    for (unsigned to = 0; to < n; ++to) {
      if (from != to) {
        queues_[from * n + to] = std::make_unique<CrossShardQueue>(queue_capacity_);
        shards_[to]->AddInbound(queues_[from * n + to].get());
      }
    }
  }
  leftover_.assign(n, 0);
  // Each ring must be made on the thread that runs it (SINGLE_ISSUER); no shard runs before
  // every shard's ring exists, since any may be messaged (MSG_RING needs the target's fd).
  std::latch initialised(n);
  std::atomic<int> failed{0};
  std::atomic<bool> go{false};
  std::latch started(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, i, &options, &setup, &initialised, &failed, &go, &started] {
      Shard& shard = *shards_[i];
      ShardOptions o = options;
      o.id = i;
      if (int r = shard.Init(o); r < 0) {
        failed.store(-r);
      }
      initialised.count_down();
      go.wait(false);
      const bool ok = failed.load() == 0;
      if (ok && setup) {
        setup(shard);
      }
      started.count_down();
      if (ok) {
        shard.Run();
        leftover_[i] = shard.Shutdown(shutdown_ms_.load());
      }
    });
  }
  initialised.wait();
  go.store(true);
  go.notify_all();
  started.wait();
  if (int e = failed.load(); e != 0) {
    Stop();
    return absl::InternalError(std::string("io_uring setup: ") + std::strerror(e));
  }
  return absl::OkStatus();
}

bool ShardGroup::Send(unsigned from, unsigned to, ShardTask task) {
  return shards_[from]->SendTo(*shards_[to], Queue(from, to), task);
}

size_t ShardGroup::Stop(uint64_t max_ms) {
  shutdown_ms_.store(max_ms);
  for (auto& s : shards_) {
    s->Stop();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
  size_t left = 0;
  for (size_t l : leftover_) {
    left += l;
  }
  return left;
}

}  // namespace camtunnel::runtime
