#include "runtime/tls_bio.h"

#include <cstring>

namespace camtunnel::runtime {
namespace {

int BioWrite(BIO* bio, const char* data, size_t len, size_t* written) {
  auto* state = static_cast<TlsBioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  state->output->Append({reinterpret_cast<const uint8_t*>(data), len});
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

long BioCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the ring sends the queue after every SSL call
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
      return 0;
    default:
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
  BIO_set_data(bio, state);
  return bio;
}

}  // namespace camtunnel::runtime
