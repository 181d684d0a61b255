#include "runtime/byte_queue.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace camtunnel::runtime {

void ByteQueue::Append(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (chunks_.size() == head_ || chunks_.back().end == kChunkBytes) {
      // TODO: take chunks from a per-shard pool once profiles show malloc on this path.
      chunks_.push_back(Chunk{std::make_unique<uint8_t[]>(kChunkBytes), 0, 0});
    }
    Chunk& c = chunks_.back();
    const size_t n = std::min(bytes.size(), kChunkBytes - c.end);
    std::memcpy(c.data.get() + c.end, bytes.data(), n);
    c.end += n;
    size_ += n;
    bytes = bytes.subspan(n);
  }
}

std::span<const uint8_t> ByteQueue::Front() const {
  if (chunks_.size() == head_) {
    return {};
  }
  const Chunk& c = chunks_[head_];
  return {c.data.get() + c.begin, c.end - c.begin};
}

void ByteQueue::Consume(size_t n) {
  assert(n <= size_);
  size_ -= n;
  while (n > 0) {
    Chunk& c = chunks_[head_];
    const size_t take = std::min(n, c.end - c.begin);
    c.begin += take;
    n -= take;
    if (c.begin == c.end) {
      c.data.reset();
      ++head_;
    }
  }
  if (head_ == chunks_.size()) {
    Clear();
  } else if (head_ >= 8 && 2 * head_ >= chunks_.size()) {
    // A queue that never drains (a long bulk transfer) must not grow its spent prefix forever.
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
}

void ByteQueue::Clear() {
  std::vector<Chunk>().swap(chunks_);
  head_ = 0;
  size_ = 0;
}

}  // namespace camtunnel::runtime
