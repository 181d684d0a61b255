// See pacer.h.
#include "agentsim/pacer.h"

#include <utility>

namespace camtunnel::agentsim {

Pacer* Pacer::Create(runtime::Shard& shard, uint64_t period_us, absl::AnyInvocable<void()> tick) {
  auto* p = new Pacer(shard, period_us, std::move(tick));
  p->Arm();
  return p;
}

Pacer::Pacer(runtime::Shard& shard, uint64_t period_us, absl::AnyInvocable<void()> tick)
    : shard_(shard), tick_(std::move(tick)), slot_(shard.Register(this)) {
  set_period_us(period_us);
}

void Pacer::set_period_us(uint64_t period_us) {
  timeout_.tv_sec = static_cast<int64_t>(period_us / 1000000);
  timeout_.tv_nsec = static_cast<int64_t>(period_us % 1000000) * 1000;
}

void Pacer::Arm() {
  io_uring_sqe* sqe = shard_.GetSqe();
  io_uring_prep_timeout(sqe, &timeout_, 0, 0);
  io_uring_sqe_set_data64(sqe, shard_.Tag(slot_, kTimeout));
  ++in_flight_;
}

void Pacer::Stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  if (in_flight_ > 0) {
    io_uring_sqe* sqe = shard_.GetSqe();
    io_uring_prep_timeout_remove(sqe, shard_.Tag(slot_, kTimeout), 0);
    io_uring_sqe_set_data64(sqe, shard_.Tag(slot_, kRemove));
    ++in_flight_;
    return;
  }
  MaybeFree();
}

void Pacer::OnCompletion(uint8_t op, int32_t /*res*/, uint32_t /*flags*/) {
  --in_flight_;
  // A timeout completes with -ETIME when it fired, -ECANCELED when removed.
  if (op == kTimeout && !stopped_) {
    Arm();  // first, so a tick that stops the pacer finds this one to remove
    tick_();
  }
  MaybeFree();
}

void Pacer::MaybeFree() {
  if (!stopped_ || in_flight_ > 0) {
    return;
  }
  shard_.Unregister(slot_);
  shard_.Defer([this] { delete this; });
}

}  // namespace camtunnel::agentsim
