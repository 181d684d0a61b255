#include "runtime/connector.h"

#include <unistd.h>

#include <cerrno>

namespace camtunnel::runtime {
namespace {
socklen_t AddrLen(const sockaddr_storage& a) {
  return a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}
}  // namespace

void Connector::Start(Shard& shard, const sockaddr_storage& to,
                      const std::optional<sockaddr_storage>& from, uint64_t timeout_ms, Done done) {
  const int fd = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    done(-errno);
    return;
  }
  if (from) {
    const int one = 1;
    // Let the kernel pick the port at connect time, per destination: many sources x ports.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<const sockaddr*>(&*from), AddrLen(*from)) != 0) {
      const int err = errno;
      close(fd);
      done(-err);
      return;
    }
  }
  auto* c = new Connector(shard, fd, std::move(done));
  c->to_ = to;
  io_uring_sqe* sqe = shard.GetSqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&c->to_), AddrLen(to));
  io_uring_sqe_set_data64(sqe, shard.Tag(c->slot_, kConnect));
  c->in_flight_ = 1;
  shard.timers().Arm(c->deadline_, shard.now_ms(), timeout_ms);
}

Connector::Connector(Shard& shard, int fd, Done done)
    : shard_(&shard), fd_(fd), slot_(shard.Register(this)), done_(std::move(done)) {
  deadline_.set_callback([this] {
    result_ = -ETIMEDOUT;
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_cancel64(sqe, shard_->Tag(slot_, kConnect), 0);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancel));
    ++in_flight_;
  });
}

void Connector::OnShutdown() {
  if (in_flight_ > 0 && result_ == 0) {
    result_ = -ECONNABORTED;
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_cancel64(sqe, shard_->Tag(slot_, kConnect), 0);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancel));
    ++in_flight_;
  }
}

void Connector::OnCompletion(uint8_t op, int32_t res, uint32_t /*flags*/) {
  --in_flight_;
  if (op == kConnect && result_ == 0) {
    result_ = res == 0 ? 1 : res;  // 1: connected
  }
  if (in_flight_ == 0) {
    Finish(result_);
  }
}

void Connector::Finish(int result) {
  shard_->timers().Cancel(deadline_);
  shard_->Unregister(slot_);
  if (result == 1) {
    done_(fd_);
  } else {
    close(fd_);
    done_(result < 0 ? result : -EIO);
  }
  shard_->Defer([this] { delete this; });
}

}  // namespace camtunnel::runtime
