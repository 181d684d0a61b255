// A provided-buffer ring (io_uring buffer group): the kernel picks a buffer only when data
// arrives, so idle connections hold no receive memory. One per shard.
//
// The kernel takes buffers from the ring in the order they were added, so a ring holding all
// `count` buffers walks through count x buffer_bytes of memory (16 MiB by default) before it
// reuses one: every receive lands in a buffer that left the CPU caches long ago, and the
// kernel's copy into it, then ours out of it, run at memory speed. So only `published` of them
// sit in the ring at a time, refilled from a stack of free buffers whose top is the one freed
// last (still cached). The published count adapts: it doubles whenever a receive finds the
// ring empty (ENOBUFS) and halves back towards its floor after a quiet while, so a burst of
// many connections gets buffers and a few busy ones stay inside the cache.
//
// Each buffer is its own allocation, made when it is first published (so buffers never needed
// cost no memory) and exchangeable: a plain relay takes a filled buffer as a chunk of its send
// queue and the ring gets a spare chunk in its place (Give), which io_uring's buffer rings
// allow since every entry carries its own address. The bytes are then never copied in user
// space.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace camtunnel::runtime {

class BufferRing {
 public:
  // Buffers kept in the ring when the load is light: 32 x 16 KiB = 512 KiB, inside L2.
  static constexpr uint32_t kMinPublished = 32;
  // A quiet while: this many shortage-free batches before the published count halves.
  static constexpr uint32_t kQuietBatches = 4096;

  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Returns -errno. `count` must be a power of two.
  int Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t buffer_bytes);
  uint16_t group_id() const { return group_id_; }
  std::span<uint8_t> Buffer(uint16_t id, size_t len) { return {memory_[id].get(), len}; }
  // The kernel filled a buffer (a completion carried IORING_CQE_F_BUFFER).
  void NoteTaken() {
    ++in_use_;
    --in_ring_;
  }
  // Hands a buffer back once its bytes have been consumed.
  void Recycle(uint16_t id);
  // Instead of Recycle: the caller keeps the filled buffer's memory (buffer_bytes() long) and
  // `replacement`, as long, takes its place in the ring.
  std::unique_ptr<uint8_t[]> Give(uint16_t id, std::unique_ptr<uint8_t[]> replacement);
  // A receive found the ring empty: publish more.
  void NoteShortage();
  // Once per loop iteration: lets the published count shrink after a quiet while.
  void EndBatch();

  uint32_t count() const { return count_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  uint32_t in_use() const { return in_use_; }
  uint32_t published() const { return published_; }
  uint64_t shortages() const { return shortages_; }

 private:
  void Refill();

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  std::vector<std::unique_ptr<uint8_t[]>> memory_;  // by buffer id; null until first published
  size_t ring_bytes_ = 0;
  std::vector<uint16_t> free_;  // buffers neither in the ring nor in use; the top is hottest
  uint32_t count_ = 0;
  uint32_t buffer_bytes_ = 0;
  uint32_t in_use_ = 0;     // handed to us by the kernel, not recycled yet
  uint32_t in_ring_ = 0;    // added to the ring, not taken by the kernel yet
  uint32_t published_ = 0;  // how many the ring should hold
  uint32_t quiet_batches_ = 0;
  uint64_t shortages_ = 0;
  uint16_t group_id_ = 0;
};

}  // namespace camtunnel::runtime
