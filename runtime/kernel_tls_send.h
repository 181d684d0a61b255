// OpenSSL's kernel-TLS sending protocol, as the ring BIO speaks it (DESIGN "Data path").
//
// With SSL_OP_ENABLE_KTLS, OpenSSL 3.0 offers the kernel the sending keys of a TLS 1.3
// connection once its handshake flight is written: it asks the write BIO to take them
// (BIO_CTRL_SET_KTLS, the kernel's struct tls12_crypto_info_*), and if the BIO says yes it
// writes each later record as plaintext, announcing the record type before each
// non-application record (session tickets, alerts). Its socket BIO hands the keys to the
// socket at once. The ring BIO cannot: the flight OpenSSL encrypted before the switch is still
// in the stream's send queue. So it notes where in the queue's byte stream the kernel's
// encryption starts and which byte ranges are control records; the stream sends up to that
// point, gives the socket the keys (TCP_ULP "tls", then SOL_TLS/TLS_TX), and sends each control
// record on its own with its type (TLS_SET_RECORD_TYPE). OpenSSL 3.0 never offers the
// receiving keys of a TLS 1.3 connection (checked against 3.0.19: one SET_KTLS, for sending),
// so what arrives is decrypted in user space as before.
//
// Only for a stream whose socket is a real descriptor on a kernel that has kTLS
// (ktls_probe.h): the BIO refuses the keys when its state has no KernelTlsSend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

namespace camtunnel::runtime {

struct KernelTlsSend {
  struct ControlRecord {
    uint64_t begin;  // byte offsets in the stream of bytes the BIO queued
    uint64_t end;
    uint8_t type;  // TLS content type: 21 alert, 22 handshake
  };

  uint64_t written = 0;               // bytes the BIO has queued so far
  std::optional<uint64_t> switch_at;  // where the kernel's encryption starts; set once
  std::vector<uint8_t> crypto_info;   // as setsockopt(SOL_TLS, TLS_TX) takes it
  uint8_t next_type = 0;              // the next write's record type; 0: application data
  std::deque<ControlRecord> control;  // not yet sent, in order
  // OpenSSL wrote a KeyUpdate after the switch (the peer asked for one). OpenSSL 3.0 gives the
  // kernel no new keys, so what follows would go out under the old ones, which the peer no
  // longer accepts: the stream must end the connection with an error at this byte instead.
  std::optional<uint64_t> key_update_at;

  // OpenSSL handed over the sending keys: `info` starts with the kernel's struct
  // tls_crypto_info. False (and nothing changes) for a cipher the kernel struct is unknown
  // for, a second hand-over (a key update: the kernel would need the new keys at the right
  // byte, which this protocol cannot say), or a short buffer.
  bool TakeKeys(std::span<const uint8_t> info);
  // `bytes` were queued.
  void Wrote(std::span<const uint8_t> bytes);
  bool sending_plaintext() const { return switch_at.has_value(); }
};

// sizeof the kernel's struct tls12_crypto_info_* for `cipher_type`, 0 if not one we know.
size_t KernelCryptoInfoSize(uint16_t cipher_type);

}  // namespace camtunnel::runtime
