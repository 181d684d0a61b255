// Kernel TLS probe (DESIGN "Data path"): whether this kernel can take over TLS records on a
// socket (the "tls" TCP upper-layer protocol, CONFIG_TLS). Where it can, a relay could hand its
// keys to the kernel after the handshake and splice ciphertext like plain bytes; where it
// cannot, TLS stays in user space over the ring BIO, which is always correct. Probed once at
// start-up on a throw-away loopback connection, so the answer reflects this kernel and its
// modules, not a build flag.
#pragma once

#include <string>

namespace camtunnel::runtime {

struct KtlsSupport {
  bool available = false;
  std::string detail;  // why not, or "tls ULP accepted"
};

KtlsSupport ProbeKernelTls();

}  // namespace camtunnel::runtime
