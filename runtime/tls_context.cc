#include "runtime/tls_context.h"

#include <openssl/err.h>

#include "absl/status/status.h"

namespace camtunnel::runtime {

std::string DrainOpenSslErrors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!text.empty()) {
      text += "; ";
    }
    text += buf;
  }
  return text;
}

absl::StatusOr<SslCtxPtr> CreateServerContext(const TlsServerFiles& files, OSSL_LIB_CTX* libctx) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new_ex(libctx, nullptr, TLS_server_method()));
  if (!ctx) {
    return absl::InternalError("SSL_CTX_new: " + DrainOpenSslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // X25519 first: a P-256 key share costs 3.4 KiB more per handshake in flight.
  if (SSL_CTX_set1_groups_list(ctx.get(), "X25519:P-256") != 1) {
    return absl::InternalError("groups: " + DrainOpenSslErrors());
  }
  // AES-128-GCM and ChaCha20 are cheaper than AES-256-GCM; clients without AES instructions
  // put ChaCha20 first and we honour their order for it (PRIORITIZE_CHACHA).
  SSL_CTX_set_ciphersuites(ctx.get(),
                           "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                           "TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx.get(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                          "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_COMPRESSION);
  // Idle agents must not pin 34 KiB of record buffers each.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Stateless tickets only (shared ticket keys come with several shards); no server cache.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: an agent resumes one connection at a
  // time and reuses its ticket, and each ticket is a seal and a record in the handshake's cost.
  SSL_CTX_set_num_tickets(ctx.get(), 1);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError("certificate " + files.cert_file + ": " +
                                      DrainOpenSslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError("private key " + files.key_file + ": " +
                                      DrainOpenSslErrors());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError("private key does not match certificate: " +
                                      DrainOpenSslErrors());
  }
  return ctx;
}

absl::StatusOr<SslCtxPtr> CreateClientContext(const std::string& ca_file, bool insecure) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    return absl::InternalError("SSL_CTX_new: " + DrainOpenSslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set1_groups_list(ctx.get(), "X25519:P-256");
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError("CA file " + ca_file + ": " + DrainOpenSslErrors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

}  // namespace camtunnel::runtime
