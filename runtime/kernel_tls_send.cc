// See kernel_tls_send.h.
#include "runtime/kernel_tls_send.h"

#include <linux/tls.h>

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
  crypto_info.assign(info.begin(), info.begin() + static_cast<std::ptrdiff_t>(size));
  switch_at = written;
  return true;
}

void KernelTlsSend::Wrote(std::span<const uint8_t> bytes) {
  constexpr uint8_t kHandshakeRecord = 22;
  constexpr uint8_t kKeyUpdateMessage = 24;
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

}  // namespace camtunnel::runtime
