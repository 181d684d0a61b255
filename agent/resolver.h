// Host name resolution off the event loop (DESIGN.md "Agent lifecycle": DNS must not block the
// one thread). A camera's DNS can take seconds per query (or time out after 5 s x retries);
// during that time heartbeats, tunnels and signals must go on.
//
// Why a helper thread per lookup rather than getaddrinfo_a or a resolver library:
// - getaddrinfo_a is glibc-only (cameras often run musl or uClibc) and itself starts threads;
// - an own DNS client (c-ares, or by hand) would bypass /etc/hosts, nsswitch and the system's
//   resolver settings that operators expect the camera to follow;
// - a thread per lookup needs no queue, no locks beyond one flag and no shutdown protocol:
//   getaddrinfo cannot be cancelled, so an abandoned lookup simply finishes on its own thread
//   and drops its result. Lookups are rare (one per connection to a named host), so the cost
//   of creating a thread is negligible next to the query.
// Address literals (the common case for services and many gateways) never start a thread.
// Lookups in flight are capped (kMaxLookupsInFlight, process-wide, abandoned ones included):
// with a DNS server that times out (10-30 s per query), abandoned lookups of successive
// reconnects and data connections would each keep a thread until getaddrinfo returns. Past the
// cap a lookup fails at once with EAGAIN and says why; the caller backs off as for any failure.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/event_loop.h"

namespace camtunnel::agent {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string ToString() const;  // "1.2.3.4:80" or "[::1]:80"
  std::string HostText() const;  // "1.2.3.4" or "::1"; empty for another family
};

class Resolver {
 public:
  // error 0: `addresses` holds at least one address, in getaddrinfo's order (RFC 6724 sorted).
  // Otherwise an errno-style code (EHOSTUNREACH for a name that does not resolve) and a
  // one-line `detail` naming the host.
  using Done =
      std::function<void(int error, std::vector<SocketAddress> addresses, std::string detail)>;

  explicit Resolver(EventLoop& loop) : loop_(loop) {}
  ~Resolver() { Cancel(); }
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves `host` (a name, or an address literal with IPv6 unbracketed) for TCP to `port`.
  // `done` is called from the loop, never from Start, last; it may destroy the resolver.
  void Start(const std::string& host, uint16_t port, Done done);
  // Abandons a lookup in progress; `done` is not called.
  void Cancel();

  static constexpr int kMaxLookupsInFlight = 16;
  // Helper threads still running getaddrinfo (those of abandoned lookups too).
  static int LookupsInFlight();
  // Tests: a lower cap (kMaxLookupsInFlight by default).
  static void SetMaxLookupsInFlight(int max);

 private:
  struct Lookup;
  static void* RunLookup(void* arg);  // the helper thread's body
  void OnLookupDone();
  void Deliver(int error, std::vector<SocketAddress> addresses, std::string detail);

  EventLoop& loop_;
  Done done_;
  std::shared_ptr<Lookup> lookup_;  // shared with its thread
  Timer literal_timer_;
  IoWatch watch_;  // on lookup_'s pipe; stopped before lookup_ is released
};

// Blocking resolution, as the helper thread runs it. Exposed for tests and for the address
// literal path.
int ResolveNow(const std::string& host, uint16_t port, bool numeric_only,
               std::vector<SocketAddress>* out, std::string* detail);

}  // namespace camtunnel::agent
