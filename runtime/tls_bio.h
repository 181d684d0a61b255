// A custom OpenSSL BIO over the shard's buffers (the HAProxy/Envoy pattern): reads come from the
// provided buffer the ring just filled, writes go to the connection's send queue. No socket I/O
// happens inside OpenSSL, so the ring stays the only place that moves bytes on the fd (kernel
// TLS: the one setsockopt that prepares the socket when OpenSSL offers its keys,
// kernel_tls_send.h).
#pragma once

#include <openssl/bio.h>

#include <cstdint>
#include <span>

#include "runtime/byte_queue.h"
#include "runtime/kernel_tls_send.h"

namespace camtunnel::runtime {

// What the BIO reads from and writes to. Rebound (BIO_set_data) when a connection moves.
struct TlsBioState {
  std::span<const uint8_t> input;  // ciphertext not yet taken by OpenSSL
  ByteQueue* output = nullptr;     // ciphertext to send (plaintext once the kernel encrypts)
  // Set where the kernel may take the sending keys (kernel_tls_send.h); null: OpenSSL keeps
  // them.
  KernelTlsSend* kernel_send = nullptr;
};

// A new BIO whose data pointer is `state` (not owned).
BIO* NewTlsBio(TlsBioState* state);

}  // namespace camtunnel::runtime
