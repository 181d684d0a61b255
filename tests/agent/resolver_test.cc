// Resolution off the loop and connecting over every address: real getaddrinfo (the system's
// /etc/hosts and nss-myhostname), real listeners on loopback.
#include "agent/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "agent/tcp_connector.h"

namespace camtunnel::agent {
namespace {

// nss-myhostname (deploy/install-deps.sh) resolves every *.localhost name to ::1 and 127.0.0.1.
constexpr char kDualStackName[] = "gw.localhost";

// A listener on `address` (IPv4 or IPv6 literal) port `port` (0: any); returns the fd.
int Listen(const char* address, uint16_t* port) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  if (inet_pton(AF_INET, address, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    family = AF_INET;
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(*port);
    len = sizeof(sockaddr_in);
  } else {
    family = AF_INET6;
    inet_pton(AF_INET6, address, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(*port);
    len = sizeof(sockaddr_in6);
  }
  ss.ss_family = static_cast<sa_family_t>(family);
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 4) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return -1;
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  *port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

struct Resolved {
  bool called = false;
  int error = -1;
  std::vector<SocketAddress> addresses;
  std::string detail;
};

Resolved ResolveOnLoop(const std::string& host) {
  EventLoop loop;
  Resolver resolver(loop);
  Resolved r;
  resolver.Start(host, 443,
                 [&](int error, std::vector<SocketAddress> addresses, std::string detail) {
                   r = {true, error, std::move(addresses), std::move(detail)};
                   loop.Stop();
                 });
  EXPECT_FALSE(r.called) << "called from inside Start()";
  loop.AddTimer(10000, [&] { loop.Stop(); });
  loop.Run();
  return r;
}

bool NameHasBothFamilies(const std::string& name) {
  std::vector<SocketAddress> out;
  std::string detail;
  if (ResolveNow(name, 1, false, &out, &detail) != 0) {
    return false;
  }
  bool v4 = false, v6 = false;
  for (const auto& a : out) {
    v4 |= a.storage.ss_family == AF_INET;
    v6 |= a.storage.ss_family == AF_INET6;
  }
  return v4 && v6;
}

TEST(ResolverTest, AddressLiteralResolvesWithoutAThreadAndFromTheLoop) {
  Resolved r = ResolveOnLoop("127.0.0.1");
  ASSERT_TRUE(r.called);
  ASSERT_EQ(r.error, 0) << r.detail;
  ASSERT_EQ(r.addresses.size(), 1u);
  EXPECT_EQ(r.addresses[0].ToString(), "127.0.0.1:443");
  r = ResolveOnLoop("::1");
  ASSERT_EQ(r.error, 0) << r.detail;
  EXPECT_EQ(r.addresses[0].ToString(), "[::1]:443");
}

TEST(ResolverTest, NameResolvesOnTheHelperThread) {
  Resolved r = ResolveOnLoop("localhost");
  ASSERT_TRUE(r.called);
  ASSERT_EQ(r.error, 0) << r.detail;
  EXPECT_FALSE(r.addresses.empty());
}

TEST(ResolverTest, NameThatDoesNotResolveGivesAClearError) {
  Resolved r = ResolveOnLoop("no-such-host.invalid");
  ASSERT_TRUE(r.called);
  EXPECT_EQ(r.error, EHOSTUNREACH);
  EXPECT_NE(r.detail.find("cannot resolve no-such-host.invalid"), std::string::npos) << r.detail;
}

TEST(ResolverTest, CancelledLookupNeverCallsBackAndLeavesTheLoopClean) {
  EventLoop loop;
  auto resolver = std::make_unique<Resolver>(loop);
  bool called = false;
  resolver->Start("localhost", 80,
                  [&](int, std::vector<SocketAddress>, std::string) { called = true; });
  resolver.reset();  // the thread finishes on its own and drops its result
  loop.AddTimer(200, [&] { loop.Stop(); });
  loop.Run();
  EXPECT_FALSE(called);
  EXPECT_EQ(loop.watch_count(), 1u);  // only the loop's own wake pipe
}

// A DNS server that never answers must not pile up helper threads: past the cap a lookup fails
// at once, says why, and address literals still resolve. Finished lookups free their slot.
TEST(ResolverTest, LookupsPastTheCapFailFastAndLiteralsStillResolve) {
  Resolver::SetMaxLookupsInFlight(0);
  Resolved r = ResolveOnLoop("localhost");
  EXPECT_EQ(r.error, EAGAIN);
  EXPECT_NE(r.detail.find("lookups already in flight"), std::string::npos) << r.detail;
  EXPECT_EQ(ResolveOnLoop("127.0.0.1").error, 0);
  Resolver::SetMaxLookupsInFlight(Resolver::kMaxLookupsInFlight);
  EXPECT_EQ(ResolveOnLoop("localhost").error, 0);
  // The helper thread lets go of its slot right after getaddrinfo returns (20 s bounds a hang).
  for (int i = 0; i < 2000 && Resolver::LookupsInFlight() != 0; ++i) {
    usleep(10000);
  }
  EXPECT_EQ(Resolver::LookupsInFlight(), 0);
}

// Connects `host` to `port` and returns {fd >= 0 or -1, error}.
std::pair<int, int> ConnectOnLoop(const std::string& host, uint16_t port) {
  EventLoop loop;
  TcpConnector connector(loop);
  std::pair<int, int> result{-1, -1};
  connector.Start(host, port, 2000, [&](int fd, int error, const std::string&) {
    result = {fd, error};
    loop.Stop();
  });
  loop.AddTimer(10000, [&] { loop.Stop(); });
  loop.Run();
  return result;
}

TEST(TcpConnectorTest, NameWithTwoAddressesConnectsWhenOnlyIpv4Listens) {
  if (!NameHasBothFamilies(kDualStackName)) {
    GTEST_SKIP() << kDualStackName << " does not resolve to both ::1 and 127.0.0.1 here";
  }
  uint16_t port = 0;
  int listener = Listen("127.0.0.1", &port);
  ASSERT_GE(listener, 0);
  auto [fd, error] = ConnectOnLoop(kDualStackName, port);  // ::1 first: refused, then IPv4
  EXPECT_GE(fd, 0) << "error " << error;
  if (fd >= 0) {
    close(fd);
  }
  close(listener);
}

TEST(TcpConnectorTest, NameWithTwoAddressesConnectsWhenOnlyIpv6Listens) {
  if (!NameHasBothFamilies(kDualStackName)) {
    GTEST_SKIP() << kDualStackName << " does not resolve to both ::1 and 127.0.0.1 here";
  }
  uint16_t port = 0;
  int listener = Listen("::1", &port);
  ASSERT_GE(listener, 0);
  auto [fd, error] = ConnectOnLoop(kDualStackName, port);
  EXPECT_GE(fd, 0) << "error " << error;
  if (fd >= 0) {
    close(fd);
  }
  close(listener);
}

TEST(TcpConnectorTest, EveryAddressRefusedReportsTheLastError) {
  uint16_t port = 0;
  int listener = Listen("127.0.0.1", &port);
  close(listener);  // nothing listens on `port` any more
  auto [fd, error] = ConnectOnLoop("127.0.0.1", port);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(error, ECONNREFUSED);
}

}  // namespace
}  // namespace camtunnel::agent
