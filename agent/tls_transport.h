// The byte stream under every agent connection, behind a small interface so that the TLS
// library can change (OpenSSL today; mbedTLS or wolfSSL on smaller cameras) without touching the
// session or relay code. A Transport owns its socket and closes it when destroyed.
//
// Every operation is non-blocking and reports what it is waiting for, because with TLS a read
// may need the socket to be writable and a write may need it to be readable. Callers poll for
// the union of what their pending operations wait for.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/crypto.h"

namespace camtunnel::agent {

enum class IoStatus {
  kOk,         // progress: `*n` bytes (Read/Write) or the operation completed
  kWantRead,   // retry when the socket is readable
  kWantWrite,  // retry when the socket is writable
  kEof,        // Read only: orderly end of the peer's stream (FIN, or TLS close_notify)
  kError,      // fatal: the connection must be reset; error_text() says why
};

// Poll events (POLLIN/POLLOUT) an IoStatus waits for; 0 when it waits for nothing.
inline short PollEventsFor(IoStatus status) {
  return status == IoStatus::kWantRead ? POLLIN : status == IoStatus::kWantWrite ? POLLOUT : 0;
}

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int fd() const = 0;
  virtual proto::Transport kind() const = 0;

  // Client handshake; kOk once complete (immediately for plain TCP). Verifies the peer.
  // kEof: the peer closed or reset the connection before the handshake completed.
  virtual IoStatus Handshake() = 0;
  virtual IoStatus Read(std::span<uint8_t> buffer, size_t* n) = 0;
  // After kWantRead/kWantWrite the same bytes must be offered again (more may follow them).
  virtual IoStatus Write(std::span<const uint8_t> bytes, size_t* n) = 0;
  // Ends our direction (TLS close_notify, then TCP FIN); reading stays possible.
  virtual IoStatus ShutdownWrite() = 0;
  // The 32-byte keying-material exporter of PROTOCOL.md section 3; empty in plain mode.
  virtual std::vector<uint8_t> Exporter() = 0;
  // Why the last kError happened (for logs; never contains secrets).
  virtual std::string error_text() const = 0;
  // After the handshake: whether the kernel encrypts what we send (kTLS).
  virtual bool kernel_tls_send() const { return false; }
};

// Trust settings for TLS connections to the gateway.
struct TlsTrust {
  std::string ca_file;                     // empty: none
  std::vector<std::vector<uint8_t>> pins;  // SHA-256 of leaf SPKI DER, 32 bytes each
  std::string server_name;                 // SNI and host name check
  bool insecure = false;                   // no verification at all (development only)
};

// Creates transports over connected sockets. One factory per gateway: the TLS factory holds the
// SSL_CTX and the last session ticket, so data connections and reconnects resume cheaply.
class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // Takes ownership of `fd` (closed on failure too).
  virtual std::unique_ptr<Transport> Wrap(int fd) = 0;
  // Earliest plausible wall-clock time (Unix seconds) for certificate validity checks; the
  // agent raises it from WELCOME's server time because cameras often have no real-time clock.
  virtual void RaiseTimeFloor(int64_t unix_seconds) { (void)unix_seconds; }
};

std::unique_ptr<TransportFactory> MakePlainTransportFactory();
// Returns null and sets `*error` when the trust settings cannot be loaded.
// `kernel_tls`: where the kernel has kTLS (the "tls" TCP upper-layer protocol), OpenSSL hands
// it the sending keys after the handshake and the kernel encrypts the records (OpenSSL 3.0
// does this for sending only). On a tunnel that is the camera's video: one copy fewer, and
// the way to splice a camera's stream into the tunnel later. Where the kernel lacks it,
// OpenSSL encrypts as before.
std::unique_ptr<TransportFactory> MakeOpenSslTransportFactory(const TlsTrust& trust,
                                                              std::string* error,
                                                              bool kernel_tls = false);
// A plain transport over an already connected socket (the camera side of a tunnel).
std::unique_ptr<Transport> MakePlainTransport(int fd);

}  // namespace camtunnel::agent
