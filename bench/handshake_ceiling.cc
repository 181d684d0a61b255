// camtunnel-handshakebench: the library's own cost of a server-side TLS handshake, with the
// gateway's exact server context (runtime::CreateServerContext on a library context of its
// own, as each shard has, and the shared ticket keys installed), measured without sockets, a
// loop or a kernel: client and server talk through memory BIOs in one thread, and only the
// server's calls are timed (thread CPU clock). What the gateway spends per handshake beyond this
// is its own (accept, io_uring, the agent protocol) or the kernel's; bench/storm.py measures
// that whole figure and quotes this one beside it.
//
//   camtunnel-handshakebench --cert C --key K [--count N] [--resume]
//
// Prints one JSON object: handshakes, server CPU microseconds per handshake, handshakes per
// core per second; with --resume, every handshake after the first resumes the previous ticket.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/ticket_keys.h"
#include "runtime/tls_context.h"

namespace {

using camtunnel::runtime::CreateClientContext;
using camtunnel::runtime::CreateServerContext;
using camtunnel::runtime::LibCtxPtr;
using camtunnel::runtime::TicketKeys;
using camtunnel::runtime::TlsServerFiles;

double ThreadCpuUs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// One handshake through a pair of memory BIOs; adds the server's CPU time to *server_us.
// Returns the client's session (for resumption) or null on failure.
SSL_SESSION* Handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx, SSL_SESSION* resume,
                       double* server_us, bool* resumed) {
  SSL* server = SSL_new(server_ctx);
  SSL* client = SSL_new(client_ctx);
  BIO* server_side = nullptr;
  BIO* client_side = nullptr;
  BIO_new_bio_pair(&server_side, 0, &client_side, 0);
  SSL_set_bio(server, server_side, server_side);
  SSL_set_bio(client, client_side, client_side);
  SSL_set_accept_state(server);
  SSL_set_connect_state(client);
  if (resume != nullptr) {
    SSL_set_session(client, resume);
  }
  bool server_done = false;
  bool client_done = false;
  for (int round = 0; round < 16 && !(server_done && client_done); ++round) {
    if (!client_done) {
      client_done = SSL_do_handshake(client) == 1;
    }
    if (!server_done) {
      const double t0 = ThreadCpuUs();
      server_done = SSL_do_handshake(server) == 1;
      *server_us += ThreadCpuUs() - t0;
    }
  }
  // TLS 1.3 tickets come after the handshake: the client reads them, the server's write of
  // them is part of its handshake cost above.
  char byte = 0;
  SSL_read(client, &byte, 1);
  SSL_SESSION* session = nullptr;
  if (server_done && client_done) {
    session = SSL_get1_session(client);
    *resumed = SSL_session_reused(server) == 1;
  }
  // Freed without a shutdown, a session is marked not resumable (ssl_clear_bad_session).
  SSL_set_shutdown(client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(client);
  SSL_free(server);
  return session;
}

}  // namespace

int main(int argc, char** argv) {
  TlsServerFiles files;
  int count = 2000;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cert" && i + 1 < argc) {
      files.cert_file = argv[++i];
    } else if (a == "--key" && i + 1 < argc) {
      files.key_file = argv[++i];
    } else if (a == "--count" && i + 1 < argc) {
      count = static_cast<int>(std::strtol(argv[++i], nullptr, 10));
    } else if (a == "--resume") {
      resume = true;
    } else {
      std::fprintf(stderr, "usage: %s --cert C --key K [--count N] [--resume]\n", argv[0]);
      return 2;
    }
  }
  if (count <= 0) {
    std::fprintf(stderr, "--count must be a positive number\n");
    return 2;
  }
  LibCtxPtr libctx(OSSL_LIB_CTX_new());
  auto server_ctx = CreateServerContext(files, libctx.get());
  auto client_ctx = CreateClientContext("", /*insecure=*/true);
  if (!server_ctx.ok() || !client_ctx.ok()) {
    std::fprintf(stderr, "contexts: %s %s\n", server_ctx.status().ToString().c_str(),
                 client_ctx.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<TicketKeys> keys = TicketKeys::Generate();
  keys->Install(server_ctx->get());
  SSL_SESSION* session = nullptr;
  double server_us = 0;
  int done = 0;
  int resumed_count = 0;
  // A few unmeasured first: algorithm fetches and caches warm up once per context.
  for (int i = -20; i < count; ++i) {
    double us = 0;
    bool resumed = false;
    SSL_SESSION* next =
        Handshake(server_ctx->get(), client_ctx->get(), resume ? session : nullptr, &us, &resumed);
    if (next == nullptr) {
      std::fprintf(stderr, "handshake failed: %s\n",
                   camtunnel::runtime::DrainOpenSslErrors().c_str());
      return 1;
    }
    SSL_SESSION_free(session);
    session = next;
    if (i >= 0) {
      server_us += us;
      ++done;
      resumed_count += resumed ? 1 : 0;
    }
  }
  SSL_SESSION_free(session);
  const double per = server_us / done;
  std::printf(
      "{\"handshakes\": %d, \"resumed\": %d, \"server_cpu_us_per_handshake\": %.1f, "
      "\"handshakes_per_core_s\": %.0f}\n",
      done, resumed_count, per, 1e6 / per);
  return 0;
}
