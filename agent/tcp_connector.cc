// See tcp_connector.h.
#include "agent/tcp_connector.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace camtunnel::agent {

std::string SocketAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (storage.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    port = ntohs(sin->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
  port = ntohs(sin6->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

int ResolveAddresses(const std::string& host, uint16_t port, std::vector<SocketAddress>* out,
                     std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return EHOSTUNREACH;
  }
  out->clear();
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    SocketAddress addr;
    std::memcpy(&addr.storage, ai->ai_addr, ai->ai_addrlen);
    addr.length = ai->ai_addrlen;
    out->push_back(addr);
  }
  ::freeaddrinfo(list);
  if (out->empty()) {
    *error = "no address for " + host;
    return EHOSTUNREACH;
  }
  return 0;
}

TcpConnector::~TcpConnector() { Cancel(); }

void TcpConnector::Cancel() {
  watch_.Stop();
  attempt_timer_.Cancel();
  CloseAttempt();
  done_ = nullptr;
}

void TcpConnector::Start(std::vector<SocketAddress> addresses, int64_t attempt_timeout_ms,
                         Done done) {
  addresses_ = std::move(addresses);
  next_ = 0;
  attempt_timeout_ms_ = attempt_timeout_ms;
  done_ = std::move(done);
  // Deferred to the loop so that `done` never runs inside Start(): owners may destroy themselves
  // from it.
  attempt_timer_.Start(loop_, 0, [this] { TryNext(); });
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
    TryNext();
    return;
  }
  Finish(fd_, 0);
}

void TcpConnector::Finish(int fd, int error) {
  watch_.Stop();
  attempt_timer_.Cancel();
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  fd_ = -1;  // ownership moves to the callback
  Done done = std::move(done_);
  done(fd, error);
}

}  // namespace camtunnel::agent
