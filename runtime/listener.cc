#include "runtime/listener.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"

namespace camtunnel::runtime {

namespace {
uint16_t PortOf(const sockaddr_storage& a) {
  return ntohs(a.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&a)->sin_port
                                      : reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
}
}  // namespace

absl::StatusOr<sockaddr_storage> ParseListenAddress(const std::string& text) {
  sockaddr_storage ss{};
  std::string host;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError("bad address '" + text + "': want [v6]:port");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError("bad address '" + text + "': want host:port");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError("bad port in '" + text + "'");
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    return absl::InvalidArgumentError("bad address '" + text + "': numeric IPv4 or [IPv6] only");
  }
  return ss;
}

namespace {

// 0 if a plain bind (no SO_REUSEPORT) of `addr` succeeds, i.e. no socket holds the port; else
// the errno.
int ProbeBind(const sockaddr_storage& addr) {
  const int one = 1;
  const int family = addr.ss_family;
  const socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  const int probe = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) {
    return errno;
  }
  setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) {
    setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  const int err = bind(probe, reinterpret_cast<const sockaddr*>(&addr), len) == 0 ? 0 : errno;
  close(probe);
  return err;
}

}  // namespace

bool Listener::PortFree(const std::string& address) {
  auto addr = ParseListenAddress(address);
  return addr.ok() && ProbeBind(*addr) == 0;
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(Shard& shard, const std::string& address,
                                                         AcceptFn on_accept, bool exclusive,
                                                         const AcceptBudget& budget) {
  auto addr = ParseListenAddress(address);
  if (!addr.ok()) {
    return addr.status();
  }
  const int family = addr->ss_family;
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(std::string("socket: ") + strerror(errno));
  }
  const int one = 1;
  const socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (exclusive && PortOf(*addr) != 0) {
    // SO_REUSEPORT would let a second gateway silently share this port and split its agents
    // and scrapes: a plain bind first proves nobody else holds it. A gateway killed a moment
    // ago (SIGKILL) may still hold it while the kernel tears its ring down: retry briefly
    // before calling the port taken.
    int err = ProbeBind(*addr);
    for (int attempt = 1; err == EADDRINUSE && attempt < kBindAttempts; ++attempt) {
      usleep(kBindRetryMs * 1000);
      err = ProbeBind(*addr);
    }
    if (err != 0) {
      close(fd);
      return absl::UnavailableError("listen on " + address + ": " + strerror(err) +
                                    " (another gateway running?)");
    }
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  int bind_result = bind(fd, reinterpret_cast<const sockaddr*>(&*addr), len);
  for (int attempt = 1; bind_result != 0 && errno == EADDRINUSE && attempt < kBindAttempts;
       ++attempt) {
    usleep(kBindRetryMs * 1000);  // as above
    bind_result = bind(fd, reinterpret_cast<const sockaddr*>(&*addr), len);
  }
  if (bind_result != 0 || listen(fd, 4096) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError("listen on " + address + ": " + strerror(err));
  }
  std::unique_ptr<Listener> l(new Listener(shard, fd, address, std::move(on_accept)));
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  l->port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  l->set_accept_budget(budget);  // not armed yet: nothing to cancel
  l->Arm();
  return l;
}

Listener::Listener(Shard& shard, int fd, std::string address, AcceptFn on_accept)
    : shard_(&shard),
      fd_(fd),
      slot_(shard.Register(this)),
      address_(std::move(address)),
      on_accept_(std::move(on_accept)) {
  retry_timer_.set_callback([this] { Arm(); });
}

Listener::~Listener() {
  // The owner destroys listeners only after the shard loop has stopped, so no completion can
  // arrive for this slot any more.
  shard_->Unregister(slot_);
  if (fd_ >= 0) {
    close(fd_);
  }
}

void Listener::set_accept_budget(const AcceptBudget& budget) {
  budget_ = budget;
  if (budget_.per_second > 0 && budget_.burst == 0) {
    budget_.burst = budget_.per_second / 10 > 0 ? budget_.per_second / 10 : 1;
  }
  tokens_ = budget_.burst;
  tokens_at_ms_ = shard_->now_ms();
  if (armed_ && budget_.per_second > 0) {
    // A multishot accept is running: end it; its last completion re-arms in paced mode.
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_cancel64(sqe, shard_->Tag(slot_, kAcceptOp), 0);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancelOp));
  }
}

bool Listener::TakeToken() {
  const uint64_t now = shard_->now_ms();
  tokens_ += static_cast<double>(now - tokens_at_ms_) * budget_.per_second / 1000.0;
  tokens_at_ms_ = now;
  if (tokens_ > budget_.burst) {
    tokens_ = budget_.burst;
  }
  if (tokens_ < 1.0) {
    return false;
  }
  tokens_ -= 1.0;
  return true;
}

uint64_t Listener::MsUntilToken() const {
  const double missing = 1.0 - tokens_;
  const auto ms = static_cast<uint64_t>(missing * 1000.0 / budget_.per_second) + 1;
  return ms;
}

void Listener::Arm() {
  if (armed_ || closed_) {
    return;
  }
  if (budget_.per_second > 0) {
    if (!TakeToken()) {
      ++paced_pauses_;
      shard_->timers().Arm(retry_timer_, shard_->now_ms(), MsUntilToken());
      return;
    }
    // One connection per operation: the budget is never overrun by a batch of accepts.
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kAcceptOp));
    armed_ = true;
    return;
  }
  io_uring_sqe* sqe = shard_->GetSqe();
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kAcceptOp));
  armed_ = true;
}

void Listener::Close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  shard_->timers().Cancel(retry_timer_);
  // shutdown() ends the multishot accept with an error completion; close() alone would not
  // while the ring holds a reference to the file.
  shutdown(fd_, SHUT_RDWR);
}

void Listener::OnCompletion(uint8_t op, int32_t res, uint32_t flags) {
  if (op == kCancelOp) {
    return;
  }
  if ((flags & IORING_CQE_F_MORE) == 0) {
    armed_ = false;
  }
  if (res >= 0) {
    if (closed_) {
      close(res);
    } else {
      on_accept_(res);
    }
  } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    ++fd_exhausted_pauses_;
    if (!armed_ && !closed_) {
      shard_->timers().Arm(retry_timer_, shard_->now_ms(), kFdExhaustedPauseMs);
    }
    return;
  }
  if (!armed_) {
    Arm();
  }
}

}  // namespace camtunnel::runtime
