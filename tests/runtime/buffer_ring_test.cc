// BufferRing on a real io_uring: receives reuse a few hot buffers instead of walking through
// all of them, shortages publish more, and a quiet while shrinks the published set again.
#include "runtime/buffer_ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>
#include <utility>

namespace camtunnel::runtime {
namespace {

class BufferRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(io_uring_queue_init(64, &ring_, 0), 0);
    ASSERT_EQ(buffers_.Init(&ring_, 7, kCount, 4096), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair_), 0);
  }
  void TearDown() override {
    close(pair_[0]);
    close(pair_[1]);
  }

  // One receive into a provided buffer, taken from the ring (not recycled): {id, bytes}, or
  // {-1, res} on failure.
  std::pair<int, int> Receive() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_recv(sqe, pair_[1], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring_, &cqe) != 0) {
      return {-1, -1};
    }
    const int res = cqe->res;
    const uint32_t flags = cqe->flags;
    io_uring_cqe_seen(&ring_, cqe);
    if (res <= 0 || (flags & IORING_CQE_F_BUFFER) == 0) {
      return {-1, res};
    }
    buffers_.NoteTaken();
    return {static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT), res};
  }

  // One receive; returns its buffer id (the buffer recycled afterwards) or a value < 0.
  int ReceiveOne() {
    const auto [id, res] = Receive();
    if (id < 0) {
      return res <= 0 ? res : -1;
    }
    buffers_.Recycle(static_cast<uint16_t>(id));
    return id;
  }

  static constexpr uint32_t kCount = 256;
  io_uring ring_{};
  BufferRing buffers_;
  int pair_[2] = {-1, -1};
};

TEST_F(BufferRingTest, LightLoadCyclesThroughOnlyThePublishedBuffers) {
  EXPECT_EQ(buffers_.published(), BufferRing::kMinPublished);
  std::set<int> ids;
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(write(pair_[0], "0123456789", 10), 10);
    const int id = ReceiveOne();
    ASSERT_GE(id, 0);
    ids.insert(id);
  }
  // A ring holding all 256 would have used every one of them; this one stays in the cache.
  EXPECT_LE(ids.size(), BufferRing::kMinPublished);
  EXPECT_EQ(buffers_.in_use(), 0u);
}

TEST_F(BufferRingTest, ShortagesPublishMoreAndQuietShrinksBack) {
  buffers_.NoteShortage();
  buffers_.NoteShortage();
  EXPECT_EQ(buffers_.published(), 4 * BufferRing::kMinPublished);
  EXPECT_EQ(buffers_.shortages(), 2u);
  for (int i = 0; i < 20; ++i) {
    buffers_.NoteShortage();
  }
  EXPECT_EQ(buffers_.published(), kCount);  // never more than there are
  for (uint32_t i = 0; i < BufferRing::kQuietBatches; ++i) {
    buffers_.EndBatch();
  }
  EXPECT_EQ(buffers_.published(), kCount / 2);
  for (uint32_t i = 0; i < 10 * BufferRing::kQuietBatches; ++i) {
    buffers_.EndBatch();
  }
  EXPECT_EQ(buffers_.published(), BufferRing::kMinPublished);
  // Receiving still works after shrinking: the ring holds buffers added while it was larger.
  ASSERT_EQ(write(pair_[0], "x", 1), 1);
  EXPECT_GE(ReceiveOne(), 0);
}

TEST_F(BufferRingTest, GiveHandsOverTheFilledMemoryAndTheReplacementTakesItsPlace) {
  ASSERT_EQ(write(pair_[0], "handed over", 11), 11);
  const auto [id, n] = Receive();
  ASSERT_GE(id, 0);
  ASSERT_EQ(n, 11);
  const auto bid = static_cast<uint16_t>(id);
  const uint8_t* filled_at = buffers_.Buffer(bid, 0).data();
  auto replacement = std::make_unique<uint8_t[]>(4096);
  const uint8_t* replacement_at = replacement.get();
  const std::unique_ptr<uint8_t[]> filled = buffers_.Give(bid, std::move(replacement));
  // The caller owns the very memory the kernel filled; the ring took the replacement back.
  EXPECT_EQ(filled.get(), filled_at);
  EXPECT_EQ(std::memcmp(filled.get(), "handed over", 11), 0);
  EXPECT_EQ(buffers_.in_use(), 0u);
  EXPECT_EQ(buffers_.Buffer(bid, 0).data(), replacement_at);
  // When the kernel picks that id again, the bytes land in the replacement.
  for (uint32_t i = 0; i <= BufferRing::kMinPublished; ++i) {
    ASSERT_EQ(write(pair_[0], "second", 6), 6);
    const auto [next, len] = Receive();
    ASSERT_GE(next, 0);
    buffers_.Recycle(static_cast<uint16_t>(next));
    if (next == id) {
      EXPECT_EQ(std::memcmp(replacement_at, "second", 6), 0);
      return;
    }
  }
  ADD_FAILURE() << "buffer " << id << " never came back from the ring";
}

}  // namespace
}  // namespace camtunnel::runtime
