// Opens a client connection through the ring and wraps it in a started runtime::Stream: TLS
// (client side, handshake at Start) when given a context, plain otherwise.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>

#include <functional>
#include <optional>
#include <string>

#include "runtime/shard.h"
#include "runtime/stream.h"

namespace camtunnel::agentsim {

// Called once: with the new stream (error 0) just before Start(), so the handler knows its
// stream before the first event; or with null and a positive errno when the connect failed.
using DialDone = std::function<void(runtime::Stream* stream, int error)>;

void Dial(runtime::Shard& shard, const sockaddr_storage& to,
          const std::optional<sockaddr_storage>& from, SSL_CTX* tls_ctx,
          const std::string& server_name, uint64_t timeout_ms, runtime::StreamHandler* handler,
          DialDone done, SSL_SESSION* resume = nullptr);

}  // namespace camtunnel::agentsim
