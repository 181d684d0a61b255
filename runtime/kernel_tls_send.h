// OpenSSL's kernel-TLS sending protocol, as the ring BIO and the stream speak it (DESIGN "Data
// path"; docs/runtime.md "Kernel TLS").
//
// With SSL_OP_ENABLE_KTLS, OpenSSL 3.0 offers the kernel the sending keys of a TLS 1.3
// connection once its handshake flight is written: it asks the write BIO to take them
// (BIO_CTRL_SET_KTLS, the kernel's struct tls12_crypto_info_*), and if the BIO says yes it
// writes each later record as plaintext, announcing the record type before each
// non-application record (session tickets, a KeyUpdate, alerts). Its socket BIO hands the keys
// to the socket at once. The ring BIO cannot: the flight OpenSSL encrypted before the switch
// is still in the stream's send queue. So it attaches the "tls" upper-layer protocol to the
// socket (where the kernel refuses, it refuses the keys and OpenSSL keeps encrypting), notes
// where in the queue's byte stream the kernel's encryption starts and which byte ranges are
// control records; the stream sends up to that point, gives the socket the keys
// (SOL_TLS/TLS_TX), and sends each control record on its own with its type
// (TLS_SET_RECORD_TYPE). OpenSSL 3.0 never offers the receiving keys of a TLS 1.3 connection
// (checked against 3.0.19: one SET_KTLS, for sending), so what arrives is decrypted in user
// space as before; and after a KeyUpdate it gives the kernel no new keys, so the stream ends
// the connection there with an error rather than send under keys the peer has dropped.
#pragma once

#include <cstddef>
#include <cstdint>
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

  int fd = -1;                         // the socket; -1: none to prepare (tests of the protocol)
  uint64_t written = 0;                // bytes the BIO has queued so far
  uint64_t sent = 0;                   // bytes the stream has given the socket
  std::optional<uint64_t> switch_at;   // where the kernel's encryption starts; set once
  std::vector<uint8_t> crypto_info;    // as setsockopt(SOL_TLS, TLS_TX) takes it
  bool keys_given = false;             // the socket has them
  uint8_t next_type = 0;               // the next write's record type; 0: application data
  std::vector<ControlRecord> control;  // not yet sent, in order
  // A KeyUpdate OpenSSL wrote after the switch starts here.
  std::optional<uint64_t> key_update_at;

  // OpenSSL hands over the sending keys: `info` starts with the kernel's struct
  // tls_crypto_info. False (and nothing changes) for a cipher the kernel struct is unknown
  // for, a short buffer, a second hand-over, or a socket the kernel will not put TLS on.
  bool TakeKeys(std::span<const uint8_t> info);
  // `bytes` were queued.
  void Wrote(std::span<const uint8_t> bytes);
  bool sending_plaintext() const { return switch_at.has_value(); }

  // The stream's side. Before each send: the keys are due now (everything before the switch
  // is out and the socket does not have them yet).
  bool keys_due() const { return switch_at && sent == *switch_at && !keys_given; }
  // Gives the socket the keys (SOL_TLS/TLS_TX); false with errno set.
  bool GiveKeys();
  // The next send must not happen: it would carry what follows a KeyUpdate.
  bool at_key_update() const { return key_update_at && sent >= *key_update_at; }
  // How many of the `queued` bytes from `sent` on the next send may carry, and in `*type` the
  // record type to send them as (0: as they are: raw records before the switch, application
  // data after it). Ends at the switch point and at control records' bounds.
  size_t NextSend(size_t queued, uint8_t* type) const;
  // `n` bytes went to the socket.
  void Sent(size_t n);
};

// sizeof the kernel's struct tls12_crypto_info_* for `cipher_type`, 0 if not one we know.
size_t KernelCryptoInfoSize(uint16_t cipher_type);

}  // namespace camtunnel::runtime
