// A bounded single-producer/single-consumer queue of tasks from one shard's thread to another's
// (DESIGN "Sharding": shards share nothing and talk by message). One queue per ordered pair of
// shards, so neither end ever contends with a third thread. A full queue is the sender's
// problem to handle (count it, refuse the connection): it never blocks and never grows.
//
// Ordering: a task pushed before another runs before it, and everything the producer wrote
// before TryPush is visible to the task when it runs (release/acquire on the indices): this is
// what makes handing a connection's state to another shard safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>

#include "absl/functional/any_invocable.h"

namespace camtunnel::runtime {

using ShardTask = absl::AnyInvocable<void() &&>;

// The padding is the point: head_ and tail_ on cache lines of their own (kLine).
class CrossShardQueue {  // NOLINT(clang-analyzer-optin.performance.Padding)
 public:
  // `capacity` is rounded up to a power of two.
  explicit CrossShardQueue(size_t capacity);
  CrossShardQueue(const CrossShardQueue&) = delete;
  CrossShardQueue& operator=(const CrossShardQueue&) = delete;

  // Producer thread only. False when full (the task is left untouched in `task`).
  bool TryPush(ShardTask& task);
  // Consumer thread only: runs up to `max` tasks in order; returns how many ran.
  size_t Drain(size_t max);
  // Either thread; exact on the consumer, a snapshot on the producer.
  // seq_cst: the sleeping shard's re-check pairs with the producer's seq_cst push (shard.cc).
  bool Empty() const {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_seq_cst);
  }
  size_t capacity() const { return mask_ + 1; }

 private:
  static constexpr size_t kLine = 64;  // keep the two indices on their own cache lines

  std::unique_ptr<std::optional<ShardTask>[]> slots_;
  size_t mask_;
  alignas(kLine) std::atomic<uint64_t> head_{0};  // next to run; written by the consumer
  alignas(kLine) std::atomic<uint64_t> tail_{0};  // next free; written by the producer
};

}  // namespace camtunnel::runtime
