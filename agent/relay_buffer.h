// A bounded byte buffer for one relay direction. Reads land at the tail, writes drain the head;
// the buffer compacts only when the tail reaches the end (rare with a 64 KiB buffer and
// whole-packet reads), so there is no ring-buffer wrap to split a TLS record.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace camtunnel::agent {

class RelayBuffer {
 public:
  explicit RelayBuffer(size_t capacity) : bytes_(capacity) {}

  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  bool full() const { return size() == bytes_.size(); }

  // Free space at the tail (compacting first if that makes room).
  std::span<uint8_t> WritableTail() {
    if (end_ == bytes_.size() && begin_ > 0) {
      std::memmove(bytes_.data(), bytes_.data() + begin_, size());
      end_ -= begin_;
      begin_ = 0;
    }
    return std::span<uint8_t>(bytes_.data() + end_, bytes_.size() - end_);
  }
  void Commit(size_t n) { end_ += n; }
  std::span<const uint8_t> Readable() const {
    return std::span<const uint8_t>(bytes_.data() + begin_, size());
  }
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
    }
  }
  // Appends as much of `data` as fits; returns how much.
  size_t Append(std::span<const uint8_t> data) {
    std::span<uint8_t> tail = WritableTail();
    size_t n = data.size() < tail.size() ? data.size() : tail.size();
    if (n > 0) {
      std::memcpy(tail.data(), data.data(), n);
      Commit(n);
    }
    return n;
  }

 private:
  std::vector<uint8_t> bytes_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace camtunnel::agent
