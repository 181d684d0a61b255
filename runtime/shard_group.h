// N shards, each on its own thread with its own ring, and a cross-shard queue for every ordered
// pair (DESIGN "Sharding"). Start() returns once every shard is initialised and running its
// `setup`; from then on, code on shard i reaches shard j only through Send(i, j, task).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "runtime/cross_shard_queue.h"
#include "runtime/shard.h"

namespace camtunnel::runtime {

class ShardGroup {
 public:
  // Tasks in flight per ordered pair of shards; a sender that finds its queue full must
  // refuse the work (and count it), never wait.
  static constexpr size_t kQueueCapacity = 4096;

  ShardGroup() = default;
  // Before Start: tasks in flight per ordered pair (tests use tiny queues to fill them).
  void set_queue_capacity(size_t capacity) { queue_capacity_ = capacity; }
  ~ShardGroup();
  ShardGroup(const ShardGroup&) = delete;
  ShardGroup& operator=(const ShardGroup&) = delete;

  // Starts `n` shards (ids 0..n-1, the rest of `options` shared). `setup` runs on each shard's
  // thread before its loop, once every shard exists (so it may already send to others).
  absl::Status Start(unsigned n, const ShardOptions& options,
                     std::function<void(Shard&)> setup = {});
  // On shard `from`'s thread. False when the queue from -> to is full.
  bool Send(unsigned from, unsigned to, ShardTask task);
  // Stops every loop, lets each shard close its streams (Shutdown, at most `max_ms`), joins.
  // Returns the number of streams still alive across shards (0 on a clean teardown).
  size_t Stop(uint64_t max_ms = 2000);

  unsigned size() const { return static_cast<unsigned>(shards_.size()); }
  Shard& shard(unsigned i) { return *shards_[i]; }

 private:
  CrossShardQueue& Queue(unsigned from, unsigned to) { return *queues_[from * size() + to]; }

  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::unique_ptr<CrossShardQueue>> queues_;  // [from * n + to]; null on the diagonal
  std::vector<std::thread> threads_;
  std::vector<size_t> leftover_;  // per shard, from Shutdown
  std::atomic<uint64_t> shutdown_ms_{2000};
  size_t queue_capacity_ = kQueueCapacity;
};

}  // namespace camtunnel::runtime
