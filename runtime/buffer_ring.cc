#include "runtime/buffer_ring.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace camtunnel::runtime {

int BufferRing::Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes) {
  ring_ = ring;
  group_id_ = group_id;
  count_ = count;
  buffer_bytes_ = buffer_bytes;
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* mem =
      mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return -errno;
  }
  br_ = static_cast<io_uring_buf_ring*>(mem);
  memory_.resize(count);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  if (int r = io_uring_register_buf_ring(ring, &reg, 0); r < 0) {
    return r;
  }
  // Buffer 0 on top: the first receives use the start of the area.
  free_.reserve(count);
  for (uint32_t i = count; i > 0; --i) {
    free_.push_back(static_cast<uint16_t>(i - 1));
  }
  published_ = std::min(kMinPublished, count);
  Refill();
  return 0;
}

void BufferRing::Refill() {
  const int mask = io_uring_buf_ring_mask(count_);
  int added = 0;
  while (in_ring_ < published_ && !free_.empty()) {
    const uint16_t id = free_.back();
    free_.pop_back();
    std::unique_ptr<uint8_t[]>& memory = memory_[id];
    if (memory == nullptr) {
      memory = std::make_unique_for_overwrite<uint8_t[]>(buffer_bytes_);
    }
    io_uring_buf_ring_add(br_, memory.get(), buffer_bytes_, id, mask, added);
    ++added;
    ++in_ring_;
  }
  if (added > 0) {
    io_uring_buf_ring_advance(br_, added);
  }
}

void BufferRing::Recycle(uint16_t id) {
  free_.push_back(id);
  --in_use_;
  Refill();
}

std::unique_ptr<uint8_t[]> BufferRing::Give(uint16_t id, std::unique_ptr<uint8_t[]> replacement) {
  std::unique_ptr<uint8_t[]> filled = std::exchange(memory_[id], std::move(replacement));
  Recycle(id);
  return filled;
}

void BufferRing::NoteShortage() {
  ++shortages_;
  quiet_batches_ = 0;
  published_ = std::min(count_, published_ * 2);
  Refill();
}

void BufferRing::EndBatch() {
  if (published_ <= kMinPublished || ++quiet_batches_ < kQuietBatches) {
    return;
  }
  quiet_batches_ = 0;
  // Buffers already in the ring stay there until the kernel takes them; we just stop adding.
  published_ = std::max(kMinPublished, published_ / 2);
}

BufferRing::~BufferRing() {
  if (br_ != nullptr && ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
  }
  if (br_ != nullptr) {
    munmap(br_, ring_bytes_);
  }
}

}  // namespace camtunnel::runtime
