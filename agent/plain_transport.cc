// Plain TCP transport: used for a gateway without a certificate (frames are then MACed by the
// control session) and for the camera side of every tunnel.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/tls_transport.h"

namespace camtunnel::agent {

namespace {

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}
  ~PlainTransport() override { ::close(fd_); }

  int fd() const override { return fd_; }
  proto::Transport kind() const override { return proto::Transport::kPlain; }
  IoStatus Handshake() override { return IoStatus::kOk; }

  IoStatus Read(std::span<uint8_t> buffer, size_t* n) override {
    *n = 0;
    ssize_t r;
    do {
      r = ::recv(fd_, buffer.data(), buffer.size(), 0);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
      *n = static_cast<size_t>(r);
      return IoStatus::kOk;
    }
    if (r == 0) {
      return IoStatus::kEof;
    }
    return Fail(errno, IoStatus::kWantRead);
  }

  IoStatus Write(std::span<const uint8_t> bytes, size_t* n) override {
    *n = 0;
    ssize_t r;
    do {
      r = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      *n = static_cast<size_t>(r);
      return IoStatus::kOk;
    }
    return Fail(errno, IoStatus::kWantWrite);
  }

  IoStatus ShutdownWrite() override {
    if (::shutdown(fd_, SHUT_WR) != 0) {
      return Fail(errno, IoStatus::kError);
    }
    return IoStatus::kOk;
  }

  std::vector<uint8_t> Exporter() override { return {}; }
  std::string error_text() const override { return error_; }

 private:
  IoStatus Fail(int err, IoStatus would_block) {
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return would_block;
    }
    error_ = std::strerror(err);
    return IoStatus::kError;
  }

  int fd_;
  std::string error_;
};

class PlainTransportFactory final : public TransportFactory {
 public:
  std::unique_ptr<Transport> Wrap(int fd) override { return MakePlainTransport(fd); }
};

}  // namespace

std::unique_ptr<Transport> MakePlainTransport(int fd) {
  return std::make_unique<PlainTransport>(fd);
}

std::unique_ptr<TransportFactory> MakePlainTransportFactory() {
  return std::make_unique<PlainTransportFactory>();
}

}  // namespace camtunnel::agent
