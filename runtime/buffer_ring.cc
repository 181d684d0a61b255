#include "runtime/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>

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
  data_bytes_ = static_cast<size_t>(count) * buffer_bytes;
  mem = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return -errno;
  }
  base_ = static_cast<uint8_t*>(mem);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  if (int r = io_uring_register_buf_ring(ring, &reg, 0); r < 0) {
    return r;
  }
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(i) * buffer_bytes, buffer_bytes,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return 0;
}

void BufferRing::Recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(id) * buffer_bytes_, buffer_bytes_, id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
  --in_use_;
}

BufferRing::~BufferRing() {
  if (br_ != nullptr && ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
  }
  if (br_ != nullptr) {
    munmap(br_, ring_bytes_);
  }
  if (base_ != nullptr) {
    munmap(base_, data_bytes_);
  }
}

}  // namespace camtunnel::runtime
