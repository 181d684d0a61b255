// SplicePump over real loopback TCP connections and a real io_uring: every byte in order, the
// end of stream passed on, small requests and answers that never stall, the bytes before a
// reset delivered, and cancellation of a pump waiting on an idle socket (the sanitizer build
// runs these).
#include "runtime/splice_pump.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/shard.h"
#include "tests/runtime/test_client.h"

namespace camtunnel::runtime {
namespace {

using camtunnel::testing::RandomBytes;

// A connected loopback TCP pair: {client end, server end}.
std::pair<int, int> TcpPair() {
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  EXPECT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(lfd, 1), 0);
  EXPECT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int client = camtunnel::testing::ConnectLoopback(ntohs(a.sin_port));
  const int server = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  close(lfd);
  return {client, server};
}

bool WriteAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until EOF or an error; returns the bytes and sets *error (0 on EOF).
std::vector<uint8_t> ReadAll(int fd, int* error) {
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.insert(out.end(), buf, buf + n);
      continue;
    }
    *error = n == 0 ? 0 : errno;
    return out;
  }
}

class DoneHandler final : public SplicePumpHandler {
 public:
  void OnPumpDone(SplicePump& pump, int error) override {
    done = true;
    done_error = error;
    bytes = pump.bytes();
  }
  bool done = false;
  int done_error = -1;
  uint64_t bytes = 0;
};

class SplicePumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as every program using the pump does
    ASSERT_EQ(shard_.Init(ShardOptions{}), 0);
    std::tie(source_peer_, source_) = TcpPair();
    std::tie(destination_, destination_peer_) = TcpPair();
  }
  void TearDown() override {
    EXPECT_EQ(shard_.Shutdown(2000), 0u);
    for (int fd : {source_peer_, source_, destination_, destination_peer_}) {
      if (fd >= 0) {
        close(fd);
      }
    }
  }
  SplicePump* StartPump() {
    int error = 0;
    SplicePump* pump = SplicePump::Create(shard_, source_, destination_, &handler_, &error);
    EXPECT_NE(pump, nullptr) << error;
    pump->Start();
    return pump;
  }

  Shard shard_;
  DoneHandler handler_;
  int source_peer_ = -1;  // the test writes here; the pump reads `source_`
  int source_ = -1;
  int destination_ = -1;  // the pump writes here; the test reads `destination_peer_`
  int destination_peer_ = -1;
};

TEST_F(SplicePumpTest, MovesEveryByteInOrderAndPassesTheEndOn) {
  const std::vector<uint8_t> sent = RandomBytes(8 << 20, 1);
  StartPump();
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(source_peer_, sent));
    shutdown(source_peer_, SHUT_WR);
  });
  int read_error = -1;
  std::vector<uint8_t> received;
  std::thread reader([&] { received = ReadAll(destination_peer_, &read_error); });
  EXPECT_TRUE(shard_.RunUntil([&] { return handler_.done; }, 20000));
  writer.join();
  reader.join();
  EXPECT_EQ(handler_.done_error, 0);
  EXPECT_EQ(handler_.bytes, sent.size());
  EXPECT_EQ(read_error, 0) << "the destination saw a FIN after the last byte";
  EXPECT_TRUE(received == sent) << received.size() << " bytes received of " << sent.size();
}

TEST_F(SplicePumpTest, SmallRequestsAndAnswersNeverStall) {
  // Two pumps, one per direction, as a plain tunnel: 200 round trips of a 64-byte request and
  // its answer, each written only after the previous answer arrived.
  StartPump();
  DoneHandler back_handler;
  int error = 0;
  SplicePump* back =
      SplicePump::Create(shard_, destination_, source_, &back_handler, &error);  // answers
  ASSERT_NE(back, nullptr);
  back->Start();
  bool finished = false;
  std::thread peers([&] {
    uint8_t buf[64];
    for (int i = 0; i < 200; ++i) {
      std::vector<uint8_t> request = RandomBytes(64, 100 + static_cast<uint32_t>(i));
      ASSERT_TRUE(WriteAll(source_peer_, request));
      ASSERT_EQ(recv(destination_peer_, buf, sizeof(buf), MSG_WAITALL), 64);
      ASSERT_TRUE(std::equal(request.begin(), request.end(), buf));
      ASSERT_TRUE(WriteAll(destination_peer_, request));  // the answer echoes the request
      ASSERT_EQ(recv(source_peer_, buf, sizeof(buf), MSG_WAITALL), 64);
      ASSERT_TRUE(std::equal(request.begin(), request.end(), buf));
    }
    shutdown(source_peer_, SHUT_WR);
    shutdown(destination_peer_, SHUT_WR);
    finished = true;
  });
  EXPECT_TRUE(shard_.RunUntil([&] { return handler_.done && back_handler.done; }, 20000));
  peers.join();
  EXPECT_TRUE(finished);
  EXPECT_EQ(handler_.done_error, 0);
  EXPECT_EQ(back_handler.done_error, 0);
  EXPECT_EQ(handler_.bytes, 200u * 64);
  EXPECT_EQ(back_handler.bytes, 200u * 64);
}

TEST_F(SplicePumpTest, BytesBeforeASourceResetAreDeliveredThenTheErrorIsReported) {
  const std::vector<uint8_t> sent = RandomBytes(100000, 2);
  StartPump();
  ASSERT_TRUE(WriteAll(source_peer_, sent));
  linger lg{1, 0};
  setsockopt(source_peer_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(source_peer_);
  source_peer_ = -1;
  EXPECT_TRUE(shard_.RunUntil([&] { return handler_.done; }, 10000));
  EXPECT_EQ(handler_.done_error, ECONNRESET);
  EXPECT_EQ(handler_.bytes, sent.size());
  // The owner resets the destination on an error; here the test just reads what arrived.
  shutdown(destination_, SHUT_WR);
  int read_error = -1;
  EXPECT_TRUE(ReadAll(destination_peer_, &read_error) == sent);
}

TEST_F(SplicePumpTest, CancelEndsAPumpWaitingOnAnIdleSource) {
  SplicePump* pump = StartPump();
  // Let the pump find the source idle and wait for it.
  shard_.RunUntil([] { return false; }, 50);
  pump->Cancel();
  EXPECT_FALSE(handler_.done) << "never called from inside Cancel()";
  EXPECT_TRUE(shard_.RunUntil([&] { return handler_.done; }, 5000));
  EXPECT_EQ(handler_.done_error, ECANCELED);
  // The source is still usable by its owner: nothing was consumed from it.
  const std::vector<uint8_t> later = RandomBytes(1000, 3);
  ASSERT_TRUE(WriteAll(source_peer_, later));
  shard_.RunUntil([] { return false; }, 50);  // the pump is gone; the loop frees it
  uint8_t buf[2000];
  EXPECT_EQ(recv(source_, buf, sizeof(buf), MSG_DONTWAIT), 1000);
}

TEST_F(SplicePumpTest, DestinationResetEndsThePumpWithAnError) {
  StartPump();
  linger lg{1, 0};
  setsockopt(destination_peer_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(destination_peer_);
  destination_peer_ = -1;
  // Small enough for the socket buffers: the write never waits on the dead pump.
  ASSERT_TRUE(WriteAll(source_peer_, RandomBytes(16384, 4)));
  EXPECT_TRUE(shard_.RunUntil([&] { return handler_.done; }, 10000));
  EXPECT_TRUE(handler_.done_error == ECONNRESET || handler_.done_error == EPIPE)
      << handler_.done_error;
}

}  // namespace
}  // namespace camtunnel::runtime
