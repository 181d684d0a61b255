// A provided-buffer ring (io_uring buffer group): the kernel picks a buffer only when data
// arrives, so idle connections hold no receive memory. One per shard.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <span>

namespace camtunnel::runtime {

class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Returns -errno. `count` must be a power of two.
  int Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes);
  uint16_t group_id() const { return group_id_; }
  std::span<uint8_t> Buffer(uint16_t id, size_t len) {
    return {base_ + static_cast<size_t>(id) * buffer_bytes_, len};
  }
  // Hands a buffer back to the kernel once its bytes have been consumed.
  void Recycle(uint16_t id);
  uint32_t count() const { return count_; }
  uint32_t in_use() const { return in_use_; }
  void NoteTaken() { ++in_use_; }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  uint8_t* base_ = nullptr;
  size_t ring_bytes_ = 0;
  size_t data_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_bytes_ = 0;
  uint32_t in_use_ = 0;
  uint16_t group_id_ = 0;
};

}  // namespace camtunnel::runtime
