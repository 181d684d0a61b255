// The one HTTP/1.1 request server of camtunnel's own APIs: the gateway and manager admin
// listeners, the manager's public listener, agentsim's metrics endpoint, and the operator
// console to come. Over runtime::Stream (plain or TLS), on one shard, with:
//  - request heads bounded by proto/http_head.h (8 KiB, 64 fields: 431), bodies by each route's
//    limit (413), no chunked bodies (411);
//  - a routing table (router.h) and one bearer-token check before any non-public route (401);
//  - errors answered the same everywhere: {"error":"..."} (proto/http_answer.h);
//  - keep-alive when the options and the client allow it, one request at a time, with a
//    deadline per request that also bounds an idle kept-alive connection;
//  - answers later (Reply), connections handed to another shard, upgrades, server-sent events.
//
// Why a folder of its own (http/, next to runtime/): runtime/ is transport only (ring, streams,
// TLS) and knows nothing of HTTP, proto/ is pure formats without I/O, and each program's folder
// (gateway/, manager/, agentsim/) may not depend on another's. This layer needs runtime/ and
// proto/ and is needed by all three, so it sits between them; the agent (no io_uring) never
// links it.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "http/exchange.h"
#include "http/router.h"
#include "runtime/shard.h"
#include "runtime/stream.h"

namespace camtunnel::http {

struct ServerOptions {
  // Serve further requests on a connection (HTTP/1.1 unless "Connection: close"; HTTP/1.0 with
  // "Connection: keep-alive"). Off: every answer says "Connection: close" and ends it.
  bool keep_alive = true;
  // From accept (or the previous answer) to this request's answer, body included; 0: none
  // (a stream whose owner keeps its own deadline).
  uint64_t request_timeout_ms = 10000;
  // Read per request: an empty token asks for none (loopback-only listeners).
  std::function<std::string_view()> bearer_token;
  // Hooks for the owner's counters: a refused token, every answer's status, a deadline hit,
  // and a connection closed (not one taken by an upgrade or moved to another shard).
  std::function<void()> on_unauthorized;
  std::function<void(int status)> on_answer;
  std::function<void()> on_timeout;
  std::function<void()> on_closed;
};

// A connection on a stream the server does not own (Server::Serve): the owner, which stays the
// stream's handler, passes the stream's bytes and EOF in, and destroys the session when the
// stream ends (never from inside OnBytes or OnEof). Moving and taking the stream are not
// offered on such a connection.
class EmbeddedSession {
 public:
  virtual ~EmbeddedSession() = default;
  virtual void OnBytes(std::span<const uint8_t> bytes) = 0;
  virtual void OnEof() = 0;
};

class Server {
 public:
  Server(runtime::Shard& shard, Router router, ServerOptions options)
      : shard_(shard), router_(std::move(router)), options_(std::move(options)) {}
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // A connection accepted on a listener (TLS server side with a non-null `tls`).
  void Accept(int fd, SSL_CTX* tls = nullptr);
  // Serves requests on `stream`, which stays its owner's (see EmbeddedSession).
  std::unique_ptr<EmbeddedSession> Serve(runtime::Stream& stream);
  // A connection moved here from another shard's server (Exchange::MoveConnection), on this
  // shard's thread: `bytes` are read again from the start.
  void Adopt(runtime::Stream* stream, std::string bytes);

  runtime::Shard& shard() { return shard_; }
  const Router& router() const { return router_; }
  const ServerOptions& options() const { return options_; }

 private:
  runtime::Shard& shard_;
  const Router router_;
  const ServerOptions options_;
};

}  // namespace camtunnel::http
