// A FIFO of bytes stored in fixed-size chunks. The front chunk can be handed to the kernel for a
// send while new bytes are appended behind it: appending never moves bytes already queued.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace camtunnel::runtime {

class ByteQueue {
 public:
  // 16 KiB: one maximal TLS record, so a record never straddles more than two chunks.
  static constexpr size_t kChunkBytes = 16384;

  void Append(std::span<const uint8_t> bytes);
  // Appends the first `n` bytes of `chunk` (kChunkBytes long) by taking the chunk itself: a
  // receive buffer handed over whole, with no copy. What is appended later fills its rest.
  void AppendChunk(std::unique_ptr<uint8_t[]> chunk, size_t n);
  // A kChunkBytes chunk from this thread's pool of spent ones (the freshest), or a new one.
  static std::unique_ptr<uint8_t[]> NewChunk();
  // Writable space at the back (never empty; a new chunk when the last is full), for a
  // producer that writes in place (a TLS record decrypted straight into the queue). Commit(n)
  // then appends the first n bytes written there.
  std::span<uint8_t> TailRoom();
  void Commit(size_t n);
  // After TailRoom() with nothing committed: gives that chunk back, so an empty queue holds no
  // memory and no empty chunk sits in front of a later one.
  void DropUnusedTail();
  // The longest contiguous run at the front (empty when the queue is empty).
  std::span<const uint8_t> Front() const;
  // The front runs of up to out.size() chunks, for one gathering send; returns how many.
  size_t Gather(std::span<iovec> out) const;
  void Consume(size_t n);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void Clear();

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;
    size_t begin = 0;
    size_t end = 0;
  };
  // Live chunks are chunks_[head_..]. A vector, not std::deque (libstdc++'s allocates about
  // 600 bytes even when empty), and released whenever the queue drains: an idle connection's
  // queue holds no heap at all, which matters at tens of thousands of agents per gateway.
  std::vector<Chunk> chunks_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace camtunnel::runtime
