// See kernel_tls_send.h.
#include "runtime/kernel_tls_send.h"

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace camtunnel::runtime {

size_t KernelCryptoInfoSize(uint16_t cipher_type) {
  switch (cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return sizeof(tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256:
      return sizeof(tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_CHACHA20_POLY1305:
      return sizeof(tls12_crypto_info_chacha20_poly1305);
    case TLS_CIPHER_AES_CCM_128:
      return sizeof(tls12_crypto_info_aes_ccm_128);
    default:
      return 0;
  }
}

bool KernelTlsSend::TakeKeys(std::span<const uint8_t> info) {
  if (switch_at || info.size() < sizeof(tls_crypto_info)) {
    return false;
  }
  tls_crypto_info head;
  std::memcpy(&head, info.data(), sizeof(head));
  const size_t size = KernelCryptoInfoSize(head.cipher_type);
  if (size == 0 || info.size() < size) {
    return false;
  }
  // The upper-layer protocol changes nothing about what is sent until the keys are given, so
  // it is attached now: a kernel that refuses it leaves the keys with OpenSSL.
  if (fd >= 0 && setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0) {
    return false;
  }
  crypto_info.assign(info.begin(), info.begin() + static_cast<std::ptrdiff_t>(size));
  switch_at = written;
  return true;
}

void KernelTlsSend::Wrote(std::span<const uint8_t> bytes) {
  constexpr uint8_t kHandshakeRecord = 22;
  constexpr uint8_t kKeyUpdateMessage = 24;
  if (bytes.empty()) {
    return;  // an empty write is no record (and a zero-length send would repeat forever)
  }
  if (next_type != 0) {
    if (next_type == kHandshakeRecord && !bytes.empty() && bytes[0] == kKeyUpdateMessage &&
        !key_update_at) {
      key_update_at = written;
    }
    control.push_back({written, written + bytes.size(), next_type});
    next_type = 0;
  }
  written += bytes.size();
}

bool KernelTlsSend::GiveKeys() {
  if (setsockopt(fd, SOL_TLS, TLS_TX, crypto_info.data(),
                 static_cast<socklen_t>(crypto_info.size())) != 0) {
    return false;
  }
  keys_given = true;
  return true;
}

size_t KernelTlsSend::NextSend(size_t queued, uint8_t* type) const {
  *type = 0;
  uint64_t limit = queued;
  if (!switch_at) {
    return queued;
  }
  if (sent < *switch_at) {
    return static_cast<size_t>(std::min<uint64_t>(limit, *switch_at - sent));
  }
  if (key_update_at) {
    limit = std::min<uint64_t>(limit, *key_update_at > sent ? *key_update_at - sent : 0);
  }
  if (!control.empty()) {
    const ControlRecord& next = control.front();
    if (next.begin <= sent) {
      *type = next.type;
      return static_cast<size_t>(std::min<uint64_t>(limit, next.end - sent));
    }
    limit = std::min<uint64_t>(limit, next.begin - sent);
  }
  return static_cast<size_t>(limit);
}

void KernelTlsSend::Sent(size_t n) {
  sent += n;
  while (!control.empty() && control.front().end <= sent) {
    control.erase(control.begin());
  }
}

}  // namespace camtunnel::runtime
