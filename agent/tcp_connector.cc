// See tcp_connector.h.
#include "agent/tcp_connector.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/log.h"

namespace camtunnel::agent {

TcpConnector::~TcpConnector() { Cancel(); }

void TcpConnector::Cancel() {
  resolver_.Cancel();
  watch_.Stop();
  attempt_timer_.Cancel();
  CloseAttempt();
  done_ = nullptr;
}

void TcpConnector::Start(const std::string& host, uint16_t port, int64_t attempt_timeout_ms,
                         Done done) {
  Cancel();
  host_ = host;
  port_ = port;
  addresses_.clear();
  next_ = 0;
  last_error_ = ECONNREFUSED;
  last_address_.clear();
  attempt_timeout_ms_ = attempt_timeout_ms;
  done_ = std::move(done);
  resolver_.Start(host, port,
                  [this](int error, std::vector<SocketAddress> addresses, std::string detail) {
                    OnResolved(error, std::move(addresses), std::move(detail));
                  });
}

void TcpConnector::OnResolved(int error, std::vector<SocketAddress> addresses, std::string detail) {
  if (error != 0) {
    Done done = std::move(done_);
    done(-1, error, detail);
    return;
  }
  addresses_ = std::move(addresses);
  TryNext();
}

void TcpConnector::CloseAttempt() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void TcpConnector::TryNext() {
  watch_.Stop();
  attempt_timer_.Cancel();
  CloseAttempt();
  while (next_ < addresses_.size()) {
    const SocketAddress& addr = addresses_[next_++];
    last_address_ = addr.ToString();
    fd_ = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      last_error_ = errno;
      continue;
    }
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) == 0) {
      Finish(fd_, 0);
      return;
    }
    if (errno != EINPROGRESS) {
      last_error_ = errno;
      LOG_DEBUG("connect to %s (%s): %s", last_address_.c_str(), host_.c_str(),
                std::strerror(last_error_));
      CloseAttempt();
      continue;
    }
    watch_.Start(loop_, fd_, POLLOUT, [this](short) { OnWritable(); });
    attempt_timer_.Start(loop_, attempt_timeout_ms_, [this] {
      last_error_ = ETIMEDOUT;
      TryNext();
    });
    return;
  }
  Finish(-1, last_error_);
}

void TcpConnector::OnWritable() {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err == EINPROGRESS || err == EALREADY) {
    return;  // spurious wakeup
  }
  if (err != 0) {
    last_error_ = err;
    LOG_DEBUG("connect to %s (%s): %s", last_address_.c_str(), host_.c_str(), std::strerror(err));
    TryNext();
    return;
  }
  Finish(fd_, 0);
}

void TcpConnector::Finish(int fd, int error) {
  watch_.Stop();
  attempt_timer_.Cancel();
  std::string detail;
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    LOG_DEBUG("connected to %s (%s)", last_address_.c_str(), host_.c_str());
  } else {
    detail = "connect to " + host_ + ":" + std::to_string(port_) +
             (addresses_.size() > 1 ? " (" + std::to_string(addresses_.size()) +
                                          " addresses, last " + last_address_ + ")"
                                    : "") +
             ": " + std::strerror(error);
  }
  fd_ = -1;  // ownership moves to the callback
  Done done = std::move(done_);
  done(fd, error, detail);
}

}  // namespace camtunnel::agent
