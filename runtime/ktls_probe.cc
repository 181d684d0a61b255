// See ktls_probe.h.
#include "runtime/ktls_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace camtunnel::runtime {
namespace {

// The ULP can only be attached to an established TCP socket: make a loopback pair.
bool ConnectedPair(int* client, int* server, std::string* why) {
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  *client = *server = -1;
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(lfd, 1) != 0 || getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    *why = std::string("probe socket: ") + std::strerror(errno);
    if (lfd >= 0) {
      close(lfd);
    }
    return false;
  }
  *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (*client < 0 || connect(*client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    *why = std::string("probe connect: ") + std::strerror(errno);
    close(lfd);
    return false;
  }
  *server = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  close(lfd);
  if (*server < 0) {
    *why = std::string("probe accept: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

KtlsSupport ProbeKernelTls() {
  KtlsSupport out;
  int client = -1;
  int server = -1;
  if (!ConnectedPair(&client, &server, &out.detail)) {
    if (client >= 0) {
      close(client);
    }
    return out;
  }
  if (setsockopt(server, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0) {
    out.available = true;
    out.detail = "tls ULP accepted";
  } else if (errno == ENOENT) {
    out.detail = "the kernel has no TLS upper-layer protocol (CONFIG_TLS, module tls)";
  } else {
    out.detail = std::string("TCP_ULP tls: ") + std::strerror(errno);
  }
  close(client);
  close(server);
  return out;
}

}  // namespace camtunnel::runtime
