// See outbound_connector.h.
#include "agent/outbound_connector.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/log.h"
#include "proto/http_head.h"

namespace camtunnel::agent {

void OutboundConnector::Start(const std::string& host, uint16_t port,
                              std::shared_ptr<const ProxyConfig> proxy, int64_t attempt_timeout_ms,
                              Done done) {
  Cancel();
  host_ = host;
  port_ = port;
  proxy_ = std::move(proxy);
  done_ = std::move(done);
  if (!proxy_) {
    tcp_.Start(host, port, attempt_timeout_ms,
               [this](int fd, int error, const std::string& detail) { Finish(fd, error, detail); });
    return;
  }
  tcp_.Start(proxy_->host, proxy_->port, attempt_timeout_ms,
             [this](int fd, int error, const std::string& detail) {
               OnProxyConnected(fd, error, detail);
             });
}

void OutboundConnector::Cancel() {
  tcp_.Cancel();
  watch_.Stop();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  request_.clear();
  reply_.clear();
  sent_ = 0;
  done_ = nullptr;
}

void OutboundConnector::OnProxyConnected(int fd, int error, const std::string& detail) {
  if (fd < 0) {
    Finish(-1, error, "proxy " + proxy_->text + ": " + detail);
    return;
  }
  fd_ = fd;
  request_ = BuildConnectRequest(*proxy_, host_, port_);
  LOG_DEBUG("CONNECT %s:%u through proxy %s", host_.c_str(), port_, proxy_->text.c_str());
  watch_.Start(loop_, fd_, POLLOUT, [this](short) { StepProxy(); });
}

// Writes the CONNECT head, then reads the proxy's answer head. Nothing may follow that head:
// both protocols spoken through the tunnel (TLS, the camtunnel upgrade) start with the client,
// so a byte from the server before ours means the proxy is not tunnelling.
void OutboundConnector::StepProxy() {
  while (sent_ < request_.size()) {
    const ssize_t n = ::send(fd_, request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        watch_.SetEvents(POLLOUT);
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      Finish(-1, errno, "proxy " + proxy_->text + ": " + std::strerror(errno));
      return;
    }
    sent_ += static_cast<size_t>(n);
  }
  char buf[1024];
  while (true) {
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch_.SetEvents(POLLIN);
      return;
    }
    if (n <= 0) {
      const int err = n == 0 ? ECONNRESET : errno;
      Finish(-1, err,
             "proxy " + proxy_->text + " closed before answering CONNECT " + host_ + ":" +
                 std::to_string(port_) + (n < 0 ? std::string(": ") + std::strerror(err) : ""));
      return;
    }
    reply_.append(buf, static_cast<size_t>(n));
    proto::ResponseHead head;
    const proto::HeadResult result = proto::ParseResponseHead(reply_, &head);
    if (result == proto::HeadResult::kNeedMore) {
      continue;
    }
    if (result != proto::HeadResult::kComplete) {
      Finish(-1, EPROTO,
             "proxy " + proxy_->text + ": bad answer to CONNECT (" +
                 std::string(proto::HeadResultName(result)) + ")");
      return;
    }
    if (head.status < 200 || head.status > 299) {
      // 407 is the standard answer to missing or wrong credentials; some proxies (tinyproxy)
      // answer wrong ones with 401.
      const bool auth = head.status == 401 || head.status == 407;
      const int err = auth || head.status == 403 ? EACCES : ECONNREFUSED;
      Finish(-1, err,
             "proxy " + proxy_->text + " refused CONNECT " + host_ + ":" + std::to_string(port_) +
                 ": " + std::to_string(head.status) + " " + std::string(head.reason) +
                 (auth ? " (proxy credentials missing or wrong)" : ""));
      return;
    }
    if (reply_.size() != head.head_bytes) {
      Finish(-1, EPROTO, "proxy " + proxy_->text + " sent bytes after its CONNECT answer");
      return;
    }
    const int fd = fd_;
    fd_ = -1;  // handed over
    Finish(fd, 0, "");
    return;
  }
}

void OutboundConnector::Finish(int fd, int error, const std::string& detail) {
  watch_.Stop();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  Done done = std::move(done_);
  done_ = nullptr;
  done(fd, error, detail);
}

}  // namespace camtunnel::agent
