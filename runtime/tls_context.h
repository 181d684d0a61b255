// Server-side TLS configuration: one SSL_CTX per shard (OpenSSL 3.0 contends on shared
// contexts). TLS 1.3 preferred, 1.2 allowed, ECDSA P-256 certificates, X25519 first, released
// buffers for idle connections, no server-side session cache.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace camtunnel::runtime {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct TlsServerFiles {
  std::string cert_file;  // PEM chain, leaf first
  std::string key_file;   // PEM private key
};

// `libctx`: the OpenSSL library context to fetch algorithms from (a shard's own, so handshakes
// on different shards do not share its locks and caches); null: the process default.
absl::StatusOr<SslCtxPtr> CreateServerContext(const TlsServerFiles& files,
                                              OSSL_LIB_CTX* libctx = nullptr);

struct LibCtxDeleter {
  void operator()(OSSL_LIB_CTX* ctx) const { OSSL_LIB_CTX_free(ctx); }
};
using LibCtxPtr = std::unique_ptr<OSSL_LIB_CTX, LibCtxDeleter>;

// Client side (load generators, probes of other gateways): verifies the peer against `ca_file`
// unless `insecure`; same groups, suites and released buffers as the server side.
absl::StatusOr<SslCtxPtr> CreateClientContext(const std::string& ca_file, bool insecure);

// The last OpenSSL error queue entries as text (and clears the queue), for log lines.
std::string DrainOpenSslErrors();

}  // namespace camtunnel::runtime
