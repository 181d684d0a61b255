#include "runtime/byte_queue.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace camtunnel::runtime {

void ByteQueue::Append(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (chunks_.empty() || chunks_.back().end == kChunkBytes) {
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
  if (chunks_.empty()) {
    return {};
  }
  const Chunk& c = chunks_.front();
  return {c.data.get() + c.begin, c.end - c.begin};
}

void ByteQueue::Consume(size_t n) {
  assert(n <= size_);
  size_ -= n;
  while (n > 0) {
    Chunk& c = chunks_.front();
    const size_t take = std::min(n, c.end - c.begin);
    c.begin += take;
    n -= take;
    if (c.begin == c.end) {
      chunks_.pop_front();
    }
  }
}

void ByteQueue::Clear() {
  chunks_.clear();
  size_ = 0;
}

}  // namespace camtunnel::runtime
