// See resolver.h.
#include "agent/resolver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "agent/log.h"

namespace camtunnel::agent {

// Shared by the loop and the helper thread; freed by whichever lets go last. The thread writes
// the result, sets `done` (release) and writes one byte to the pipe; the loop reads `done`
// (acquire) before the result. The pipe closes only when both have let go, so a late thread
// never writes to a descriptor number the loop has reused.
struct Resolver::Lookup {
  std::string host;
  uint16_t port = 0;
  int pipe[2] = {-1, -1};
  std::atomic<bool> done{false};
  int error = 0;
  std::vector<SocketAddress> addresses;
  std::string detail;

  ~Lookup() {
    for (int fd : pipe) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
};

namespace {

// getaddrinfo with NSS modules needs well under this; the bound matters for address space on
// 32-bit cameras (RSS counts only the pages touched, whatever the size).
constexpr size_t kResolverStackBytes = 512 * 1024;

std::atomic<int> g_lookups_in_flight{0};
std::atomic<int> g_max_lookups_in_flight{Resolver::kMaxLookupsInFlight};

}  // namespace

void* Resolver::RunLookup(void* arg) {
  auto* holder = static_cast<std::shared_ptr<Lookup>*>(arg);
  std::shared_ptr<Lookup> lookup = std::move(*holder);
  delete holder;
  lookup->error =
      ResolveNow(lookup->host, lookup->port, false, &lookup->addresses, &lookup->detail);
  g_lookups_in_flight.fetch_sub(1, std::memory_order_relaxed);
  lookup->done.store(true, std::memory_order_release);
  const char byte = 1;
  while (::write(lookup->pipe[1], &byte, 1) < 0 && errno == EINTR) {
  }
  return nullptr;  // drops this thread's reference
}

std::string SocketAddress::HostText() const {
  char host[INET6_ADDRSTRLEN] = "";
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
              sizeof(host));
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof(host));
  }
  return host;
}

std::string SocketAddress::ToString() const {
  const std::string host = HostText();
  if (storage.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage);
    return (host.empty() ? "?" : host) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  return "[" + (host.empty() ? "?" : host) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

int ResolveNow(const std::string& host, uint16_t port, bool numeric_only,
               std::vector<SocketAddress>* out, std::string* detail) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  out->clear();
  if (rc != 0) {
    *detail = "cannot resolve " + host + ": " + gai_strerror(rc);
    return EHOSTUNREACH;
  }
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
    *detail = "no address for " + host;
    return EHOSTUNREACH;
  }
  return 0;
}

void Resolver::Start(const std::string& host, uint16_t port, Done done) {
  Cancel();
  done_ = std::move(done);
  // An address literal resolves without any query: no thread. Delivered from the loop all the
  // same, so owners never see their callback inside Start().
  std::vector<SocketAddress> literal;
  std::string ignored;
  if (ResolveNow(host, port, true, &literal, &ignored) == 0) {
    literal_timer_.Start(loop_, 0, [this, addresses = std::move(literal)]() mutable {
      Deliver(0, std::move(addresses), "");
    });
    return;
  }
  const int max = g_max_lookups_in_flight.load(std::memory_order_relaxed);
  if (g_lookups_in_flight.fetch_add(1, std::memory_order_relaxed) >= max) {
    g_lookups_in_flight.fetch_sub(1, std::memory_order_relaxed);
    literal_timer_.Start(loop_, 0, [this, host, max] {
      Deliver(EAGAIN, {},
              "cannot resolve " + host + ": " + std::to_string(max) +
                  " lookups already in flight (the DNS server is not answering?)");
    });
    return;
  }
  auto lookup = std::make_shared<Lookup>();
  lookup->host = host;
  lookup->port = port;
  int err = 0;
  if (::pipe2(lookup->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    err = errno;
  } else {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kResolverStackBytes);
    // Signals stay with the loop thread: the helper starts with every signal blocked.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    auto* holder = new std::shared_ptr<Lookup>(lookup);
    pthread_t thread;
    err = pthread_create(&thread, &attr, &RunLookup, holder);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    if (err != 0) {
      delete holder;
    }
  }
  if (err != 0) {
    g_lookups_in_flight.fetch_sub(1, std::memory_order_relaxed);
    // Out of threads or descriptors: report it like a failed lookup; the caller backs off.
    literal_timer_.Start(loop_, 0, [this, err] {
      Deliver(err, {}, std::string("cannot start a lookup: ") + std::strerror(err));
    });
    return;
  }
  lookup_ = std::move(lookup);
  watch_.Start(loop_, lookup_->pipe[0], POLLIN, [this](short) { OnLookupDone(); });
  LOG_DEBUG("resolving %s off the loop", host.c_str());
}

void Resolver::OnLookupDone() {
  if (!lookup_->done.load(std::memory_order_acquire)) {
    return;  // spurious wakeup
  }
  std::shared_ptr<Lookup> lookup = std::move(lookup_);
  watch_.Stop();
  Deliver(lookup->error, std::move(lookup->addresses), std::move(lookup->detail));
}

void Resolver::Deliver(int error, std::vector<SocketAddress> addresses, std::string detail) {
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) {
    done(error, std::move(addresses), std::move(detail));
  }
}

int Resolver::LookupsInFlight() { return g_lookups_in_flight.load(std::memory_order_relaxed); }

void Resolver::SetMaxLookupsInFlight(int max) {
  g_max_lookups_in_flight.store(max, std::memory_order_relaxed);
}

void Resolver::Cancel() {
  literal_timer_.Cancel();
  watch_.Stop();    // before the pipe can close
  lookup_.reset();  // a running thread keeps the lookup alive until it finishes
  done_ = nullptr;
}

}  // namespace camtunnel::agent
