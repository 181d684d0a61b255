#include "runtime/byte_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

namespace camtunnel::runtime {
namespace {

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<uint8_t>(i * 7 + i / 251);
  }
  return v;
}

TEST(ByteQueueTest, PreservesOrderAcrossChunks) {
  ByteQueue q;
  const auto data = Pattern(3 * ByteQueue::kChunkBytes + 123);
  // Appends of odd sizes straddle chunk boundaries.
  for (size_t off = 0; off < data.size(); off += 1000) {
    q.Append(std::span(data).subspan(off, std::min<size_t>(1000, data.size() - off)));
  }
  ASSERT_EQ(q.size(), data.size());
  std::vector<uint8_t> out;
  while (!q.empty()) {
    auto front = q.Front();
    ASSERT_FALSE(front.empty());
    const size_t take = std::min<size_t>(front.size(), 777);
    out.insert(out.end(), front.begin(), front.begin() + static_cast<std::ptrdiff_t>(take));
    q.Consume(take);
  }
  EXPECT_EQ(out, data);
}

TEST(ByteQueueTest, FrontStaysValidWhileAppending) {
  ByteQueue q;
  const auto data = Pattern(100);
  q.Append(data);
  auto front = q.Front();
  const uint8_t* before = front.data();
  q.Append(Pattern(5 * ByteQueue::kChunkBytes));
  // A send in flight keeps pointing at the same bytes.
  EXPECT_EQ(q.Front().data(), before);
  EXPECT_EQ(std::vector<uint8_t>(before, before + 100), data);
}

// A queue that is fed while it drains, and never drains fully (a long bulk transfer through a
// slow consumer), keeps every byte in order while its spent chunks are dropped; one that
// drains starts from nothing again.
TEST(ByteQueueTest, StaysInOrderWhenFedWhileDraining) {
  ByteQueue q;
  const auto data = Pattern(40 * ByteQueue::kChunkBytes + 5);
  size_t fed = 0;
  std::vector<uint8_t> out;
  while (out.size() < data.size()) {
    const size_t feed = std::min<size_t>(3 * ByteQueue::kChunkBytes / 2, data.size() - fed);
    q.Append(std::span(data).subspan(fed, feed));
    fed += feed;
    // Take a little less than was fed until the end, so the queue never empties before then.
    size_t take = fed == data.size() ? q.size() : feed - 100;
    while (take > 0) {
      auto front = q.Front();
      ASSERT_FALSE(front.empty());
      const size_t n = std::min(take, front.size());
      out.insert(out.end(), front.begin(), front.begin() + static_cast<ptrdiff_t>(n));
      q.Consume(n);
      take -= n;
    }
  }
  EXPECT_EQ(out, data);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.Front().empty());
  const auto more = Pattern(10);
  q.Append(more);
  EXPECT_EQ(std::vector<uint8_t>(q.Front().begin(), q.Front().end()), more);
}

TEST(ByteQueueTest, InPlaceWritesAndGatherKeepOrder) {
  ByteQueue q;
  const auto data = Pattern(3 * ByteQueue::kChunkBytes + 500);
  // A producer writing in place takes whatever room the tail has, as a TLS decrypt does.
  size_t off = 0;
  while (off < data.size()) {
    const std::span<uint8_t> room = q.TailRoom();
    ASSERT_FALSE(room.empty());
    const size_t n = std::min({room.size(), data.size() - off, size_t{5000}});
    std::memcpy(room.data(), data.data() + off, n);
    q.Commit(n);
    off += n;
  }
  q.TailRoom();  // room asked for and not used must not show up as bytes
  ASSERT_EQ(q.size(), data.size());
  iovec parts[8];
  const size_t count = q.Gather(parts);
  ASSERT_EQ(count, 4u);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < count; ++i) {
    const auto* p = static_cast<const uint8_t*>(parts[i].iov_base);
    out.insert(out.end(), p, p + parts[i].iov_len);
  }
  EXPECT_EQ(out, data);
  iovec two[2];
  EXPECT_EQ(q.Gather(two), 2u);
  EXPECT_EQ(two[0].iov_len + two[1].iov_len, 2 * ByteQueue::kChunkBytes);
  q.Consume(q.size());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.Gather(parts), 0u);
}

TEST(ByteQueueTest, AdoptedChunksKeepOrderWithCopiedBytesAround) {
  ByteQueue q;
  const auto data = Pattern(100 + 9000 + 2000 + 12000);
  std::span<const uint8_t> rest(data);
  q.Append(rest.first(100));  // copied
  rest = rest.subspan(100);
  q.TailRoom();  // an empty tail taken and not used: no hole before the adopted chunk
  // Handed over whole, as a filled receive buffer is: the queue owns that very memory.
  auto chunk = ByteQueue::NewChunk();
  std::memcpy(chunk.get(), rest.data(), 9000);
  const uint8_t* adopted_at = chunk.get();
  q.AppendChunk(std::move(chunk), 9000);
  rest = rest.subspan(9000);
  q.Append(rest.first(2000));  // copied into the adopted chunk's free rest
  rest = rest.subspan(2000);
  q.AppendChunk(ByteQueue::NewChunk(), 0);  // an empty hand-over changes nothing
  auto second = ByteQueue::NewChunk();
  std::memcpy(second.get(), rest.data(), rest.size() - 5);
  q.AppendChunk(std::move(second), rest.size() - 5);
  q.Append(rest.last(5));
  ASSERT_EQ(q.size(), data.size());
  iovec parts[8];
  const size_t count = q.Gather(parts);
  EXPECT_EQ(parts[1].iov_base, adopted_at);
  EXPECT_EQ(parts[1].iov_len, 11000u);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < count; ++i) {
    const auto* p = static_cast<const uint8_t*>(parts[i].iov_base);
    out.insert(out.end(), p, p + parts[i].iov_len);
  }
  EXPECT_EQ(out, data);
  q.Consume(q.size());
  EXPECT_TRUE(q.empty());
}

TEST(ByteQueueTest, ClearEmpties) {
  ByteQueue q;
  q.Append(Pattern(40000));
  q.Clear();
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.Front().empty());
}

}  // namespace
}  // namespace camtunnel::runtime
