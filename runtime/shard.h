// A shard: one thread's io_uring, provided-buffer ring, timer wheel and completion dispatch.
// Everything a shard owns is touched only by its thread; other threads may only call Stop() and
// Post() (through the wake eventfd).
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "runtime/buffer_ring.h"
#include "runtime/cross_shard_queue.h"
#include "runtime/timer_wheel.h"
#include "runtime/user_data.h"

namespace camtunnel::runtime {

// Anything with ring operations in flight. Its completions arrive through its slot; once it
// unregisters, late completions for the old generation are dropped (and counted).
class IoObject {
 public:
  virtual void OnCompletion(uint8_t op, int32_t res, uint32_t flags) = 0;
  // Shard shutdown: end every operation (streams close with ECONNABORTED, listeners stop).
  virtual void OnShutdown() {}

 protected:
  ~IoObject() = default;
};

struct ShardOptions {
  unsigned id = 0;
  unsigned ring_entries = 4096;
  uint32_t buffer_count = 1024;   // provided buffers (power of two)
  uint32_t buffer_bytes = 16384;  // one TLS record
};

// One per thread, its members grouped by concern (ring, slots, wake-up, cross-shard queues):
// the bytes a tighter order would save do not matter for a handful of objects.
class Shard {  // NOLINT(clang-analyzer-optin.performance.Padding)
 public:
  Shard() = default;
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Returns -errno. The ring is single-issuer: call Init, and everything else that submits,
  // on the thread that will Run() the shard.
  int Init(const ShardOptions& options);
  unsigned id() const { return options_.id; }

  // An SQE, submitting pending ones first if the submission queue is full. Never null.
  io_uring_sqe* GetSqe();
  uint32_t Register(IoObject* object);
  void Unregister(uint32_t slot);
  uint64_t Tag(uint32_t slot, uint8_t op) const {
    return UserData{slot, slots_[slot].generation, op}.Encode();
  }

  TimerWheel& timers() { return timers_; }
  BufferRing& buffers() { return buffers_; }
  // Time as of the start of the current loop iteration (cheap; refreshed every iteration).
  uint64_t now_ms() const { return now_ms_; }

  // Runs `fn` on this shard's thread after the current batch of completions. From the shard's
  // own thread only.
  void Defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // Thread-safe: runs `fn` on the shard's thread soon.
  void Post(std::function<void()> fn);

  // Runs the loop on the calling thread until Stop().
  void Run();
  // Runs the loop until `done()` holds or `timeout_ms` passed; returns done(). For tests and
  // tools that drive a shard from their own thread.
  bool RunUntil(const std::function<bool()>& done, uint64_t timeout_ms);
  // Thread-safe.
  void Stop();
  // On the shard's thread after Run() returned: asks every object to shut down, then runs the
  // loop until every stream has been closed and freed, or `max_ms` passed. Returns the number
  // of streams still alive (0 on a clean teardown).
  size_t Shutdown(uint64_t max_ms);

  // Streams alive on this shard (created and not yet freed).
  size_t live_streams() const { return live_streams_; }
  void StreamCreated() { ++live_streams_; }
  void StreamFreed() { --live_streams_; }

  uint64_t stale_completions() const { return stale_completions_; }

  // Cross-shard messages (see shard_group.h, which wires them). Before Run() only: a queue
  // this shard drains every loop iteration.
  void AddInbound(CrossShardQueue* queue) { inbound_.push_back(queue); }
  // On this shard's thread: queues `task` for `target` through `queue` (this shard -> target)
  // and rings the target's doorbell (IORING_OP_MSG_RING) only if it may be asleep. False when
  // the queue is full (the task is not taken).
  bool SendTo(Shard& target, CrossShardQueue& queue, ShardTask& task);
  uint64_t doorbells_rung() const { return doorbells_rung_; }
  uint64_t cross_shard_received() const { return cross_shard_received_; }

 private:
  struct Slot {
    IoObject* object = nullptr;
    uint32_t generation = 0;
  };
  class Waker;
  class Doorbell;

  void Dispatch(const io_uring_cqe* cqe);
  void RunOnce(uint64_t max_wait_ms);
  void RunDeferred();
  void ArmWake();
  void DrainPosted();
  bool InboundPending() const;
  void DrainInbound();

  ShardOptions options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  BufferRing buffers_;
  TimerWheel timers_{0};
  uint64_t now_ms_ = 0;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<std::function<void()>> deferred_;
  uint64_t stale_completions_ = 0;
  size_t live_streams_ = 0;

  // Cross-thread wake-up. The mutex guards only `posted_`, which the hot path never touches:
  // Post() is for control actions (stop, reload), not per-byte work.
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  uint32_t wake_slot_ = 0;
  Waker* waker_ = nullptr;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stop_{false};

  // Cross-shard queues into this shard, and the sleep flag their producers check: set (then a
  // full fence, then the queues re-checked) before the loop blocks, so a producer either sees
  // it and rings, or its task is seen by the re-check (Dekker's pattern, no lost wake-up).
  std::vector<CrossShardQueue*> inbound_;
  std::atomic<bool> may_sleep_{false};
  Doorbell* doorbell_ = nullptr;
  uint32_t doorbell_slot_ = 0;
  uint64_t doorbell_tag_ = 0;  // immutable after Init: read by other shards' threads
  uint64_t doorbells_rung_ = 0;
  uint64_t cross_shard_received_ = 0;
};

}  // namespace camtunnel::runtime
