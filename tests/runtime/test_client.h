// A test-side peer for runtime and gateway tests: a non-blocking TCP (optionally TLS) client
// driven by poll(2) in its own thread, that sends a byte string, half-closes, and collects
// everything the server sends until EOF or an error.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace camtunnel::testing {

inline int ConnectLoopback(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct ExchangeResult {
  std::vector<uint8_t> received;
  bool eof = false;  // orderly end (FIN, or close_notify with TLS)
  int error = 0;     // errno of a failed read/write (ECONNRESET after a reset)
  bool handshake_ok = true;
};

// Sends `to_send` (then half-closes) while reading until EOF, error or `max_ms`.
inline ExchangeResult Exchange(uint16_t port, const std::vector<uint8_t>& to_send, bool tls,
                               int max_ms = 20000, bool half_close = true) {
  ExchangeResult r;
  const int fd = ConnectLoopback(port);
  if (fd < 0) {
    r.error = errno;
    return r;
  }
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // the server side is under test
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
      r.handshake_ok = false;
      r.error = EPROTO;
      SSL_free(ssl);
      SSL_CTX_free(ctx);
      close(fd);
      return r;
    }
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t sent = 0;
  bool shut = false;
  uint8_t buf[65536];
  const int64_t deadline_polls = max_ms / 10;
  for (int64_t i = 0; i < deadline_polls && !r.eof && r.error == 0; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (sent < to_send.size()) {
      p.events |= POLLOUT;
    }
    poll(&p, 1, 10);
    // Write.
    while (sent < to_send.size()) {
      const size_t n = std::min<size_t>(to_send.size() - sent, 65536);
      ssize_t w;
      if (tls) {
        ERR_clear_error();
        w = SSL_write(ssl, to_send.data() + sent, static_cast<int>(n));
        if (w <= 0) {
          const int e = SSL_get_error(ssl, static_cast<int>(w));
          if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
            r.error = EPIPE;
          }
          break;
        }
      } else {
        w = send(fd, to_send.data() + sent, n, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno != EAGAIN) {
            r.error = errno;
          }
          break;
        }
      }
      sent += static_cast<size_t>(w);
    }
    if (sent == to_send.size() && half_close && !shut) {
      shut = true;
      if (tls) {
        SSL_shutdown(ssl);  // close_notify; reading goes on
      }
      shutdown(fd, SHUT_WR);
    }
    // Read.
    for (;;) {
      ssize_t n;
      if (tls) {
        ERR_clear_error();
        n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) {
          const int e = SSL_get_error(ssl, static_cast<int>(n));
          if (e == SSL_ERROR_ZERO_RETURN) {
            r.eof = true;
          } else if (e == SSL_ERROR_SYSCALL) {
            r.error = errno != 0 ? errno : ECONNRESET;
          } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            r.error = EPROTO;
          }
          break;
        }
      } else {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0) {
          r.eof = true;
          break;
        }
        if (n < 0) {
          if (errno != EAGAIN) {
            r.error = errno;
          }
          break;
        }
      }
      r.received.insert(r.received.end(), buf, buf + n);
    }
  }
  if (ssl != nullptr) {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  close(fd);
  return r;
}

inline std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

}  // namespace camtunnel::testing
