#include "runtime/byte_queue.h"

#include <algorithm>
#include <cstring>

#include "proto/check.h"

namespace camtunnel::runtime {
namespace {

// Spent chunks of this thread (one shard), the last freed on top. A relay frees a chunk as it
// sends and takes one as it receives, so reusing the freshest keeps its bytes in the CPU
// caches, and malloc no longer hands out (and the kernel no longer faults in) fresh pages at
// gigabits per second. Bounded: an idle shard keeps at most kPooledChunks x 16 KiB.
constexpr size_t kPooledChunks = 64;
thread_local std::vector<std::unique_ptr<uint8_t[]>> spare_chunks;

std::unique_ptr<uint8_t[]> TakeChunk() {
  if (spare_chunks.empty()) {
    return std::make_unique_for_overwrite<uint8_t[]>(ByteQueue::kChunkBytes);
  }
  std::unique_ptr<uint8_t[]> chunk = std::move(spare_chunks.back());
  spare_chunks.pop_back();
  return chunk;
}

void GiveBack(std::unique_ptr<uint8_t[]> chunk) {
  if (spare_chunks.size() < kPooledChunks) {
    spare_chunks.push_back(std::move(chunk));
  }
}

}  // namespace

std::unique_ptr<uint8_t[]> ByteQueue::NewChunk() { return TakeChunk(); }

void ByteQueue::AppendChunk(std::unique_ptr<uint8_t[]> chunk, size_t n) {
  CT_DCHECK(n <= kChunkBytes);  // the chunk was written by its producer, which sized it
  DropUnusedTail();
  chunks_.push_back(Chunk{std::move(chunk), 0, n});
  size_ += n;
}

void ByteQueue::DropUnusedTail() {
  if (size_ == 0) {
    Clear();
  } else if (chunks_.back().end == chunks_.back().begin) {
    GiveBack(std::move(chunks_.back().data));
    chunks_.pop_back();
  }
}

void ByteQueue::Append(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const std::span<uint8_t> room = TailRoom();
    const size_t n = std::min(bytes.size(), room.size());
    std::memcpy(room.data(), bytes.data(), n);
    Commit(n);
    bytes = bytes.subspan(n);
  }
}

std::span<uint8_t> ByteQueue::TailRoom() {
  if (chunks_.size() == head_ || chunks_.back().end == kChunkBytes) {
    chunks_.push_back(Chunk{TakeChunk(), 0, 0});
  }
  Chunk& c = chunks_.back();
  return {c.data.get() + c.end, kChunkBytes - c.end};
}

void ByteQueue::Commit(size_t n) {
  CT_DCHECK(chunks_.size() > head_ && chunks_.back().end + n <= kChunkBytes);
  chunks_.back().end += n;
  size_ += n;
}

size_t ByteQueue::Gather(std::span<iovec> out) const {
  size_t n = 0;
  for (size_t i = head_; i < chunks_.size() && n < out.size(); ++i) {
    const Chunk& c = chunks_[i];
    if (c.end > c.begin) {
      out[n++] = iovec{c.data.get() + c.begin, c.end - c.begin};
    }
  }
  return n;
}

std::span<const uint8_t> ByteQueue::Front() const {
  if (chunks_.size() == head_) {
    return {};
  }
  const Chunk& c = chunks_[head_];
  return {c.data.get() + c.begin, c.end - c.begin};
}

void ByteQueue::Consume(size_t n) {
  CT_CHECK(n <= size_);  // past it, the loop below walks off the chunk list
  size_ -= n;
  while (n > 0) {
    Chunk& c = chunks_[head_];
    const size_t take = std::min(n, c.end - c.begin);
    c.begin += take;
    n -= take;
    if (c.begin == c.end) {
      GiveBack(std::move(c.data));
      ++head_;
    }
  }
  if (size_ == 0) {
    Clear();  // also returns a tail chunk that TailRoom() took and nothing was written to
  } else if (head_ >= 8 && 2 * head_ >= chunks_.size()) {
    // A queue that never drains (a long bulk transfer) must not grow its spent prefix forever.
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

void ByteQueue::Clear() {
  for (size_t i = head_; i < chunks_.size(); ++i) {
    GiveBack(std::move(chunks_[i].data));
  }
  std::vector<Chunk>().swap(chunks_);
  head_ = 0;
  size_ = 0;
}

}  // namespace camtunnel::runtime
