// Listener pacing over real loopback connections and a real ring: a burst of connections is
// admitted at the budgeted rate (the rest wait in the kernel's backlog, none is refused), and
// without a budget all are admitted at once.
#include "runtime/listener.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

#include "runtime/clock.h"
#include "runtime/shard.h"
#include "tests/runtime/test_client.h"

namespace camtunnel::runtime {
namespace {

class ListenerPacingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(shard_.Init({}), 0);
    auto l = Listener::Open(shard_, "127.0.0.1:0", [this](int fd) {
      accepted_.push_back(MonotonicMs());
      close(fd);
    });
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  }
  void TearDown() override {
    listener_.reset();
    for (int fd : clients_) {
      close(fd);
    }
    EXPECT_EQ(shard_.Shutdown(2000), 0u);
  }
  // `n` clients whose TCP handshakes the kernel completes from the backlog at once.
  void ConnectClients(int n) {
    for (int i = 0; i < n; ++i) {
      const int fd = camtunnel::testing::ConnectLoopback(listener_->port());
      ASSERT_GE(fd, 0);
      clients_.push_back(fd);
    }
  }
  size_t AcceptedWithin(uint64_t start, uint64_t ms) const {
    size_t n = 0;
    for (uint64_t t : accepted_) {
      n += t - start <= ms ? 1 : 0;
    }
    return n;
  }

  Shard shard_;
  std::unique_ptr<Listener> listener_;
  std::vector<uint64_t> accepted_;
  std::vector<int> clients_;
};

TEST_F(ListenerPacingTest, BurstIsAdmittedAtTheBudgetedRateAndNoneRefused) {
  listener_->set_accept_budget({.per_second = 20, .burst = 2});
  shard_.RunUntil([] { return false; }, 20);  // the running multishot accept ends
  const uint64_t start = MonotonicMs();
  ConnectClients(30);
  shard_.RunUntil([this] { return accepted_.size() >= 30; }, 5000);
  EXPECT_EQ(accepted_.size(), 30u) << "every connection is admitted in the end";
  // 2 saved tokens, then one per 50 ms: about 12 in the first half second, 30 after ~1.4 s.
  EXPECT_LE(AcceptedWithin(start, 500), 14u);
  EXPECT_GE(AcceptedWithin(start, 500), 3u);  // loose: a loaded machine only slows it
  EXPECT_GE(accepted_.back() - start, 1200u) << "the last one waited its turn";
  EXPECT_GT(listener_->paced_pauses(), 0u);
}

TEST_F(ListenerPacingTest, WithoutABudgetABurstIsAdmittedAtOnce) {
  const uint64_t start = MonotonicMs();
  ConnectClients(30);
  shard_.RunUntil([this] { return accepted_.size() >= 30; }, 5000);
  EXPECT_EQ(AcceptedWithin(start, 500), 30u);
  EXPECT_EQ(listener_->paced_pauses(), 0u);
}

}  // namespace
}  // namespace camtunnel::runtime
