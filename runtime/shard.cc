#include "runtime/shard.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/clock.h"

namespace camtunnel::runtime {

// The shard's own wake-up reader: a read on the eventfd that Post()/Stop() write to.
class Shard::Waker final : public IoObject {
 public:
  explicit Waker(Shard* shard) : shard_(shard) {}
  void OnCompletion(uint8_t /*op*/, int32_t /*res*/, uint32_t /*flags*/) override {
    shard_->DrainPosted();
    if (!shard_->stop_.load(std::memory_order_acquire)) {
      shard_->ArmWake();
    }
  }

 private:
  Shard* shard_;
};

// Completions of doorbells: the target's (a MSG_RING arrival: it only wakes the loop, which
// drains its queues every iteration) and the sender's own (the MSG_RING operation's result).
class Shard::Doorbell final : public IoObject {
 public:
  void OnCompletion(uint8_t /*op*/, int32_t /*res*/, uint32_t /*flags*/) override {}
};

int Shard::Init(const ShardOptions& options) {
  options_ = options;
  io_uring_params params{};
  // One thread submits, and completions' task work runs only when we wait: fewer interrupts.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = options.ring_entries * 4;
  int r = io_uring_queue_init_params(options.ring_entries, &ring_, &params);
  if (r == -EINVAL) {
    // Kernels before 6.1 lack DEFER_TASKRUN; the loop works without it.
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = options.ring_entries * 4;
    r = io_uring_queue_init_params(options.ring_entries, &ring_, &params);
  }
  if (r < 0) {
    return r;
  }
  ring_ready_ = true;
  if (r = buffers_.Init(&ring_, 0, options.buffer_count, options.buffer_bytes); r < 0) {
    return r;
  }
  now_ms_ = MonotonicMs();
  timers_ = TimerWheel(now_ms_);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    return -errno;
  }
  waker_ = new Waker(this);
  wake_slot_ = Register(waker_);
  ArmWake();
  doorbell_ = new Doorbell();
  doorbell_slot_ = Register(doorbell_);
  doorbell_tag_ = Tag(doorbell_slot_, 1);
  return 0;
}

Shard::~Shard() {
  if (ring_ready_) {
    io_uring_queue_exit(&ring_);
  }
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
  delete waker_;
  delete doorbell_;
}

io_uring_sqe* Shard::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

uint32_t Shard::Register(IoObject* object) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{});
  }
  slots_[slot].object = object;
  return slot;
}

void Shard::Unregister(uint32_t slot) {
  slots_[slot].object = nullptr;
  slots_[slot].generation = (slots_[slot].generation + 1) & UserData::kGenerationMask;
  free_slots_.push_back(slot);
}

void Shard::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, Tag(wake_slot_, 0));
}

void Shard::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Shard::DrainPosted() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    work.swap(posted_);
  }
  for (auto& fn : work) {
    fn();
  }
}

bool Shard::SendTo(Shard& target, CrossShardQueue& queue, ShardTask& task) {
  if (!queue.TryPush(task)) {
    return false;
  }
  // seq_cst here and in the queue's tail store, as on the sleeper's side: either it sees the
  // task on its re-check, or we see its flag (a fence would do, but ThreadSanitizer cannot
  // check fences).
  if (target.may_sleep_.load(std::memory_order_seq_cst) &&
      target.may_sleep_.exchange(false, std::memory_order_seq_cst)) {
    // The target's ring fd and doorbell tag are fixed at its Init, before any shard runs
    // (never target.Tag(): its slot table may be growing on its own thread right now).
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_msg_ring(sqe, target.ring_.ring_fd, 0, target.doorbell_tag_, 0);
    io_uring_sqe_set_data64(sqe, Tag(doorbell_slot_, 2));
    ++doorbells_rung_;
  }
  return true;
}

bool Shard::InboundPending() const {
  for (const CrossShardQueue* q : inbound_) {
    if (!q->Empty()) {
      return true;
    }
  }
  return false;
}

void Shard::DrainInbound() {
  // Bounded per queue and iteration, so a busy neighbour cannot starve this shard's own I/O.
  constexpr size_t kMaxPerQueue = 256;
  for (CrossShardQueue* q : inbound_) {
    cross_shard_received_ += q->Drain(kMaxPerQueue);
  }
}

void Shard::Stop() {
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Shard::Dispatch(const io_uring_cqe* cqe) {
  const UserData ud = UserData::Decode(cqe->user_data);
  if (ud.slot >= slots_.size() || slots_[ud.slot].generation != ud.generation ||
      slots_[ud.slot].object == nullptr) {
    // A completion for an object already released: only possible for a cancel racing a close.
    // Should one ever carry a provided buffer, the buffer still goes back to the ring.
    if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) {
      buffers_.NoteTaken();
      buffers_.Recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    ++stale_completions_;
    return;
  }
  slots_[ud.slot].object->OnCompletion(ud.op, cqe->res, cqe->flags);
}

void Shard::RunDeferred() {
  // Deferred work may defer more work; run until quiet, in order.
  for (size_t i = 0; i < deferred_.size(); ++i) {
    auto fn = std::move(deferred_[i]);
    fn();
  }
  deferred_.clear();
}

void Shard::RunOnce(uint64_t max_wait_ms) {
  now_ms_ = MonotonicMs();
  timers_.Advance(now_ms_);
  DrainInbound();
  RunDeferred();
  uint64_t wait_ms = deferred_.empty() ? timers_.MsUntilNext(now_ms_, max_wait_ms) : 0;
  if (wait_ms > 0 && !inbound_.empty()) {
    may_sleep_.store(true, std::memory_order_seq_cst);
    if (InboundPending()) {
      wait_ms = 0;
    }
  }
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<int64_t>(wait_ms / 1000);
  ts.tv_nsec = static_cast<int64_t>((wait_ms % 1000) * 1000000);
  io_uring_cqe* cqe = nullptr;
  const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  if (r < 0 && r != -ETIME && r != -EINTR) {
    // A broken ring (or a submission from the wrong thread) cannot be retried into working.
    std::fprintf(stderr, "shard %u: io_uring_submit_and_wait: %s\n", options_.id, strerror(-r));
    std::abort();
  }
  may_sleep_.store(false, std::memory_order_relaxed);
  now_ms_ = MonotonicMs();
  unsigned head;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    Dispatch(cqe);
    ++count;
  }
  io_uring_cq_advance(&ring_, count);
  buffers_.EndBatch();
  DrainInbound();
  RunDeferred();
}

void Shard::Run() {
  while (!stop_.load(std::memory_order_acquire)) {
    RunOnce(1000);
  }
}

bool Shard::RunUntil(const std::function<bool()>& done, uint64_t timeout_ms) {
  const uint64_t deadline = MonotonicMs() + timeout_ms;
  while (!done() && MonotonicMs() < deadline) {
    // Short waits: `done` may depend on another thread, which cannot wake the ring.
    RunOnce(10);
  }
  return done();
}

size_t Shard::Shutdown(uint64_t max_ms) {
  // Objects may unregister while we iterate: collect first.
  std::vector<IoObject*> objects;
  for (const Slot& s : slots_) {
    if (s.object != nullptr && s.object != waker_ && s.object != doorbell_) {
      objects.push_back(s.object);
    }
  }
  for (IoObject* o : objects) {
    o->OnShutdown();
  }
  // Objects that end with a ring operation (a timeout or poll removed) and then free themselves
  // get its completion before the shard goes, whether or not streams are left: the removal
  // completes at submission, so two passes that do not wait are enough.
  RunOnce(0);
  RunOnce(0);
  const uint64_t deadline = MonotonicMs() + max_ms;
  while (live_streams_ > 0 && MonotonicMs() < deadline) {
    RunOnce(10);
  }
  return live_streams_;
}

}  // namespace camtunnel::runtime
