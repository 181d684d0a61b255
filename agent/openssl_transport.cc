// OpenSSL implementation of Transport: a TLS client over a non-blocking socket.
//
// Choices (see DESIGN.md "TLS"):
// - TLS 1.3 preferred, 1.2 allowed; key-share groups X25519 then P-256 (X25519 is cheaper and
//   its key share is smaller, P-256 is what strict gateways may insist on).
// - Cipher order depends on the CPU: with AES instructions AES-128-GCM first, without them
//   ChaCha20-Poly1305 first (software AES-GCM is ~13x slower). We detect this ourselves
//   (cpuid / HWCAP) rather than reading OpenSSL's internal capability vector, and put the
//   cheap suite first in both cases (AES-256-GCM, OpenSSL's default first choice, costs more and
//   buys nothing here). An OpenSSL server honours the client's order unless configured
//   otherwise, and SSL_OP_PRIORITIZE_CHACHA servers look at our first choice.
// - Verification: a CA file (or the system store), and/or a set of SPKI pins. With pins and no
//   CA file, chain errors are ignored but the host name must still match and the leaf's key must
//   be pinned. The host name is always checked unless --insecure.
// - Certificate validity is checked against max(clock, build time, last known good time: the
//   state file's, raised by WELCOME's server time), see cert_time.h: cameras without a
//   real-time clock boot in 1970. While the clock is behind that floor, "not yet valid" is
//   overlooked (a lower bound of the time can prove a certificate expired, never that it is not
//   yet valid); "expired" never is.
// - One session ticket is kept so data connections and reconnects resume (cheaper for the
//   gateway's handshake budget and for the camera's CPU).
// - SSL_MODE_RELEASE_BUFFERS: an idle connection holds no record buffers (camera RAM).
// - Kernel TLS for sending where the kernel has it (SSL_OP_ENABLE_KTLS; OpenSSL's socket BIO
//   attaches the "tls" upper-layer protocol and hands over the keys, or silently does not).
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif

#include <cerrno>
#include <cstring>

#include "agent/cert_time.h"
#include "agent/log.h"
#include "agent/pin.h"
#include "agent/tls_transport.h"

namespace camtunnel::agent {
namespace {

bool CpuHasAes() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
  return (getauxval(AT_HWCAP) & (1UL << 3)) != 0;  // HWCAP_AES
#elif defined(__arm__)
  return (getauxval(AT_HWCAP2) & (1UL << 0)) != 0;  // HWCAP2_AES
#else
  return false;
#endif
}

std::string OpenSslErrorText(const char* what) {
  std::string text = what;
  unsigned long err = ERR_peek_last_error();
  if (err != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    text += ": ";
    text += buf;
  }
  ERR_clear_error();
  return text;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

class OpenSslFactory;

// The verification errors we overlook; every other one fails the handshake:
// - chain-trust errors with pins and no CA file (the pin replaces the chain; host name, expiry
//   and signatures are still checked);
// - "not yet valid" while the clock is behind our time floor. Wrap() sets a check time (and so
//   X509_V_FLAG_USE_CHECK_TIME) only then. The floor is a lower bound of the true time: it can
//   show that a certificate has expired, never that it is not yet valid. Without this a camera
//   built a year ago and unboxed today without a clock would refuse every certificate issued
//   since its build, including the activation server's, and could never learn the time.
int VerifyCallback(int ok, X509_STORE_CTX* ctx);

class OpenSslTransport final : public Transport {
 public:
  OpenSslTransport(int fd, SSL* ssl, OpenSslFactory* factory)
      : fd_(fd), ssl_(ssl), factory_(factory) {}
  ~OpenSslTransport() override {
    SSL_free(ssl_);
    ::close(fd_);
  }

  int fd() const override { return fd_; }
  proto::Transport kind() const override { return proto::Transport::kTls; }
  IoStatus Handshake() override;

  IoStatus Read(std::span<uint8_t> buffer, size_t* n) override {
    ERR_clear_error();
    *n = 0;
    if (failed_) {
      return IoStatus::kError;
    }
    int r = SSL_read_ex(ssl_, buffer.data(), buffer.size(), n);
    return r == 1 ? IoStatus::kOk : Classify(r, "read");
  }

  IoStatus Write(std::span<const uint8_t> bytes, size_t* n) override {
    ERR_clear_error();
    *n = 0;
    if (failed_ || write_failed_) {
      return IoStatus::kError;
    }
    if (bytes.empty()) {
      return IoStatus::kOk;
    }
    int r = SSL_write_ex(ssl_, bytes.data(), bytes.size(), n);
    return r == 1 ? IoStatus::kOk : Classify(r, "write");
  }

  IoStatus ShutdownWrite() override {
    // SSL_shutdown is called again only while its close_notify is still unflushed: a call after
    // it returned 0 would wait for (and discard data before) the peer's close_notify. After a
    // fatal error OpenSSL forbids SSL_shutdown altogether.
    if (failed_ || write_failed_) {
      return IoStatus::kError;
    }
    if (!close_notify_sent_) {
      ERR_clear_error();
      int r = SSL_shutdown(ssl_);
      if (r < 0) {
        const IoStatus st = Classify(r, "shutdown");  // kWantWrite: the alert is not flushed yet
        if (st != IoStatus::kEof) {
          return st;
        }
        // The peer's close_notify came first and our alert could not be written: there is
        // nothing left to say, so this direction is done (waiting for it would never end).
      }
      close_notify_sent_ = true;
    }
    if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) {
      error_ = std::string("shutdown: ") + std::strerror(errno);
      return IoStatus::kError;
    }
    return IoStatus::kOk;
  }

  std::vector<uint8_t> Exporter() override {
    std::vector<uint8_t> out(proto::kExporterBytes);
    if (SSL_export_keying_material(ssl_, out.data(), out.size(), proto::kExporterLabel.data(),
                                   proto::kExporterLabel.size(), nullptr, 0, 0) != 1) {
      // Callers treat an empty exporter on a TLS connection as a failure.
      ERR_clear_error();
      return {};
    }
    return out;
  }

  std::string error_text() const override { return error_; }
  bool kernel_tls_send() const override { return BIO_get_ktls_send(SSL_get_wbio(ssl_)) == 1; }

 private:
  IoStatus Classify(int r, const char* what) {
    int err = SSL_get_error(ssl_, r);
    switch (err) {
      case SSL_ERROR_WANT_READ:
        return IoStatus::kWantRead;
      case SSL_ERROR_WANT_WRITE:
        return IoStatus::kWantWrite;
      case SSL_ERROR_ZERO_RETURN:
        return IoStatus::kEof;
      case SSL_ERROR_SYSCALL:
        // A write that fails on the peer's reset leaves the records that arrived before it
        // readable: reads go on until they fail themselves.
        (std::strcmp(what, "write") == 0 ? write_failed_ : failed_) = true;
        peer_closed_ = errno == 0 || errno == ECONNRESET || errno == EPIPE;
        error_ =
            std::string(what) + ": " + (errno != 0 ? std::strerror(errno) : "connection closed");
        ERR_clear_error();
        return IoStatus::kError;
      default:
        failed_ = true;
        peer_closed_ = ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
        // Includes a TCP FIN without close_notify: a truncated stream is an error, not an EOF,
        // so the camera side gets a reset rather than a clean end.
        error_ = OpenSslErrorText(what);
        return IoStatus::kError;
    }
  }
  bool VerifyPeer();

  int fd_;
  SSL* ssl_;
  OpenSslFactory* factory_;
  bool close_notify_sent_ = false;
  bool failed_ = false;        // a fatal error happened: no further SSL calls
  bool write_failed_ = false;  // a write failed at the socket: no further writes
  bool peer_closed_ = false;   // the last error was the peer closing or resetting the socket
  std::string error_;
};

class OpenSslFactory final : public TransportFactory {
 public:
  ~OpenSslFactory() override {
    SSL_SESSION_free(session_);
    SSL_CTX_free(ctx_);
  }

  bool Init(const TlsTrust& trust, std::string* error, bool kernel_tls) {
    trust_ = trust;
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) {
      *error = OpenSslErrorText("SSL_CTX_new");
      return false;
    }
    if (kernel_tls) {
      SSL_CTX_set_options(ctx_, SSL_OP_ENABLE_KTLS);
    }
    SSL_CTX_set_app_data(ctx_, this);
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                               SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const bool aes = CpuHasAes();
    const char* suites = aes ? "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                               "TLS_AES_256_GCM_SHA384"
                             : "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
                               "TLS_AES_256_GCM_SHA384";
    const char* ciphers12 = aes ? "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                  "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
                                : "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
    if (SSL_CTX_set_ciphersuites(ctx_, suites) != 1 ||
        SSL_CTX_set_cipher_list(ctx_, ciphers12) != 1 ||
        SSL_CTX_set1_groups_list(ctx_, "X25519:P-256") != 1) {
      *error = OpenSslErrorText("TLS parameters");
      return false;
    }
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, &OpenSslFactory::OnNewSession);
    if (trust.insecure) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
      return true;
    }
    if (!trust.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx_, trust.ca_file.c_str(), nullptr) != 1) {
        *error = OpenSslErrorText(("cannot load --ca_file " + trust.ca_file).c_str());
        return false;
      }
    } else if (trust.pins.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
        *error = OpenSslErrorText("cannot load the system trust store");
        return false;
      }
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, &VerifyCallback);
    return true;
  }

  std::unique_ptr<Transport> Wrap(int fd) override {
    SSL* ssl = SSL_new(ctx_);
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
      LOG_ERROR("%s", OpenSslErrorText("SSL_new").c_str());
      SSL_free(ssl);
      ::close(fd);
      return nullptr;
    }
    SSL_set_connect_state(ssl);
    const std::string& name = trust_.server_name;
    const bool ip = IsIpAddress(name);
    if (!ip) {
      SSL_set_tlsext_host_name(ssl, name.c_str());  // no SNI for address literals (RFC 6066)
    }
    if (!trust_.insecure) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      } else {
        SSL_set1_host(ssl, name.c_str());
      }
      // Only when the clock is behind the floor: VerifyCallback reads the flag this sets as
      // "the check time is a lower bound".
      const int64_t clock = ClockUnixS();
      const int64_t check = CertificateCheckTime(clock, BuildTimeUnixS(), time_floor_);
      if (check > clock) {
        X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(check));
      }
    }
    if (session_ != nullptr) {
      SSL_set_session(ssl, session_);
    }
    return std::make_unique<OpenSslTransport>(fd, ssl, this);
  }

  void RaiseTimeFloor(int64_t unix_seconds) override {
    if (unix_seconds > time_floor_) {
      time_floor_ = unix_seconds;
    }
  }

  const TlsTrust& trust() const { return trust_; }

 private:
  static int OnNewSession(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<OpenSslFactory*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    SSL_SESSION_free(self->session_);
    self->session_ = session;
    return 1;  // we keep the reference
  }

  TlsTrust trust_;
  SSL_CTX* ctx_ = nullptr;
  SSL_SESSION* session_ = nullptr;
  int64_t time_floor_ = 0;  // last known good time; the build time is added in Wrap()
};

int VerifyCallback(int ok, X509_STORE_CTX* ctx) {
  if (ok) {
    return 1;
  }
  const int error = X509_STORE_CTX_get_error(ctx);
  if (error == X509_V_ERR_CERT_NOT_YET_VALID &&
      (X509_VERIFY_PARAM_get_flags(X509_STORE_CTX_get0_param(ctx)) & X509_V_FLAG_USE_CHECK_TIME)) {
    return 1;
  }
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* factory = static_cast<OpenSslFactory*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const TlsTrust& trust = factory->trust();
  if (!trust.pins.empty() && trust.ca_file.empty()) {
    switch (error) {
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_UNTRUSTED:
        return 1;
      default:
        break;
    }
  }
  return 0;
}

IoStatus OpenSslTransport::Handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r != 1) {
    IoStatus status = Classify(r, "TLS handshake");
    if (status == IoStatus::kError || status == IoStatus::kEof) {
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) {
        error_ = std::string("certificate verification failed: ") +
                 X509_verify_cert_error_string(verify);
        return IoStatus::kError;
      }
      // A gateway over its handshake budget closes before the handshake completes: report it as
      // an early close ("busy, back off"), distinct from a TLS failure.
      return peer_closed_ || status == IoStatus::kEof ? IoStatus::kEof : IoStatus::kError;
    }
    return status;
  }
  return VerifyPeer() ? IoStatus::kOk : IoStatus::kError;
}

// Checks that OpenSSL's own verification cannot express: the pin set, and (belt and braces for
// the pin-only mode, where chain errors were overridden) the host name.
bool OpenSslTransport::VerifyPeer() {
  const TlsTrust& trust = factory_->trust();
  if (trust.insecure) {
    return true;
  }
  X509* leaf = SSL_get0_peer_certificate(ssl_);
  if (leaf == nullptr) {
    error_ = "gateway sent no certificate";
    return false;
  }
  if (trust.pins.empty()) {
    return true;
  }
  std::vector<uint8_t> spki = SpkiSha256(leaf);
  if (!MatchesPin(spki, trust.pins)) {
    error_ = "gateway key matches no --pin (it presents " + FormatPin(spki) + ")";
    return false;
  }
  const std::string& name = trust.server_name;
  int host_ok = IsIpAddress(name) ? X509_check_ip_asc(leaf, name.c_str(), 0)
                                  : X509_check_host(leaf, name.data(), name.size(),
                                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr);
  if (host_ok != 1) {
    error_ = "gateway certificate does not match host name " + name;
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<TransportFactory> MakeOpenSslTransportFactory(const TlsTrust& trust,
                                                              std::string* error, bool kernel_tls) {
  auto factory = std::make_unique<OpenSslFactory>();
  if (!factory->Init(trust, error, kernel_tls)) {
    return nullptr;
  }
  return factory;
}

}  // namespace camtunnel::agent
