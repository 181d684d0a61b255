// See cross_shard_queue.h.
#include "runtime/cross_shard_queue.h"

#include <bit>

namespace camtunnel::runtime {

CrossShardQueue::CrossShardQueue(size_t capacity)
    : slots_(new std::optional<ShardTask>[std::bit_ceil(capacity < 2 ? size_t{2} : capacity)]),
      mask_(std::bit_ceil(capacity < 2 ? size_t{2} : capacity) - 1) {}

bool CrossShardQueue::TryPush(ShardTask& task) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (tail - head_.load(std::memory_order_acquire) > mask_) {
    return false;
  }
  slots_[tail & mask_].emplace(std::move(task));
  // seq_cst, not just release: see Shard::SendTo (no lost doorbell).
  tail_.store(tail + 1, std::memory_order_seq_cst);
  return true;
}

size_t CrossShardQueue::Drain(size_t max) {
  uint64_t head = head_.load(std::memory_order_relaxed);
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  size_t ran = 0;
  while (head != tail && ran < max) {
    std::optional<ShardTask>& slot = slots_[head & mask_];
    ShardTask task = std::move(*slot);
    slot.reset();
    // Free the slot before running: the task may send back to the producer, who may then
    // push into this queue again.
    head_.store(++head, std::memory_order_release);
    std::move(task)();
    ++ran;
  }
  return ran;
}

}  // namespace camtunnel::runtime
