#include "runtime/tls_bio.h"

#include <linux/tls.h>

#include <cstring>

#include "proto/check.h"

namespace camtunnel::runtime {
namespace {

// OpenSSL 3.0's kernel-TLS controls (its include/internal/bio.h; the public bio.h lists them in
// a comment). Its socket BIO implements them; so does this one (kernel_tls_send.h).
constexpr int kCtrlSetKtls = 72;           // larg: non-zero for the sending keys
constexpr int kCtrlGetKtlsSend = 73;       // BIO_CTRL_GET_KTLS_SEND
constexpr int kCtrlSetKtlsCtrlMsg = 74;    // larg: the next write's record type
constexpr int kCtrlClearKtlsCtrlMsg = 75;  // back to application data
static_assert(kCtrlGetKtlsSend == BIO_CTRL_GET_KTLS_SEND);

int BioWrite(BIO* bio, const char* data, size_t len, size_t* written) {
  auto* state = static_cast<TlsBioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  state->output->Append({reinterpret_cast<const uint8_t*>(data), len});
  if (state->kernel_send != nullptr) {
    state->kernel_send->Wrote({reinterpret_cast<const uint8_t*>(data), len});
  }
  *written = len;
  return 1;
}

int BioRead(BIO* bio, char* out, size_t len, size_t* read) {
  auto* state = static_cast<TlsBioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (state->input.empty()) {
    BIO_set_retry_read(bio);
    *read = 0;
    return 0;
  }
  const size_t n = len < state->input.size() ? len : state->input.size();
  std::memcpy(out, state->input.data(), n);
  state->input = state->input.subspan(n);
  *read = n;
  return 1;
}

long BioCtrl(BIO* bio, int cmd, long num, void* ptr) {
  const auto* state = static_cast<const TlsBioState*>(BIO_get_data(bio));
  KernelTlsSend* kernel = state != nullptr ? state->kernel_send : nullptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the ring sends the queue after every SSL call, in order
    case kCtrlSetKtls: {
      if (kernel == nullptr || num == 0 || ptr == nullptr) {
        return 0;  // receiving keys, or no kernel TLS for this stream: OpenSSL keeps them
      }
      tls_crypto_info head;
      std::memcpy(&head, ptr, sizeof(head));
      const size_t size = KernelCryptoInfoSize(head.cipher_type);
      return kernel->TakeKeys({static_cast<const uint8_t*>(ptr), size > 0 ? size : sizeof(head)})
                 ? 1
                 : 0;
    }
    case kCtrlGetKtlsSend:
      return kernel != nullptr && kernel->sending_plaintext() ? 1 : 0;
    case kCtrlSetKtlsCtrlMsg:
      if (kernel == nullptr || num <= 0 || num > 255) {
        return 0;
      }
      kernel->next_type = static_cast<uint8_t>(num);
      return 1;
    case kCtrlClearKtlsCtrlMsg:
      if (kernel != nullptr) {
        kernel->next_type = 0;
      }
      return 1;
    default:  // BIO_CTRL_PENDING, BIO_CTRL_WPENDING among others: nothing held here
      return 0;
  }
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* Method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "camtunnel-ring");
    CT_CHECK(m != nullptr);
    BIO_meth_set_write_ex(m, BioWrite);
    BIO_meth_set_read_ex(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

}  // namespace

BIO* NewTlsBio(TlsBioState* state) {
  BIO* bio = BIO_new(Method());
  CT_CHECK(bio != nullptr);  // out of memory: the stream has no TLS to fall back to
  BIO_set_data(bio, state);
  return bio;
}

}  // namespace camtunnel::runtime
