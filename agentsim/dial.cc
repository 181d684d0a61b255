#include "agentsim/dial.h"

#include <memory>

#include "runtime/connector.h"

namespace camtunnel::agentsim {

void Dial(runtime::Shard& shard, const sockaddr_storage& to,
          const std::optional<sockaddr_storage>& from, SSL_CTX* tls_ctx,
          const std::string& server_name, uint64_t timeout_ms, runtime::StreamHandler* handler,
          DialDone done, SSL_SESSION* resume) {
  // The stream takes its own reference when it is made; until then this one keeps the session
  // alive (the agent may keep a newer one meanwhile), and goes with the callback.
  if (resume != nullptr) {
    SSL_SESSION_up_ref(resume);
  }
  std::shared_ptr<SSL_SESSION> held(resume, [](SSL_SESSION* p) { SSL_SESSION_free(p); });
  runtime::Connector::Start(
      shard, to, from, timeout_ms,
      [&shard, tls_ctx, server_name, handler, done = std::move(done), held](int fd_or_error) {
        if (fd_or_error < 0) {
          done(nullptr, -fd_or_error);
          return;
        }
        runtime::Stream* s =
            tls_ctx != nullptr ? runtime::Stream::CreateTlsClient(shard, fd_or_error, tls_ctx,
                                                                  server_name, handler, held.get())
                               : runtime::Stream::Create(shard, fd_or_error, nullptr, handler);
        done(s, 0);
        // `done` may have closed it already (a deadline passed meanwhile); the object lives
        // until the end of this batch either way.
        if (s->state() == runtime::StreamState::kOpen ||
            s->state() == runtime::StreamState::kHandshaking) {
          s->Start();
        }
      });
}

}  // namespace camtunnel::agentsim
