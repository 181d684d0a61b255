// Test helpers: a self-signed P-256 certificate made in memory, and a connected TCP pair.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace camtunnel::agent::test_util {

struct TestCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  TestCert() = default;
  TestCert(const TestCert&) = delete;
  TestCert& operator=(const TestCert&) = delete;
  ~TestCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

// Self-signed, CN and subjectAltName DNS:`name`, valid from `not_before_s` to `not_after_s`
// relative to now (by default from an hour ago for a day).
inline void MakeSelfSigned(const std::string& name, TestCert* out, long not_before_s = -3600,
                           long not_after_s = 86400) {
  out->key = EVP_EC_gen("P-256");
  out->cert = X509_new();
  X509_set_version(out->cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(out->cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(out->cert), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(out->cert), not_after_s);
  X509_set_pubkey(out->cert, out->key);
  X509_NAME* subject = X509_get_subject_name(out->cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(out->cert, subject);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, out->cert, out->cert, nullptr, nullptr, 0);
  std::string san = "DNS:" + name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(out->cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(out->cert, out->key, EVP_sha256());
}

// Two connected, non-blocking TCP sockets on loopback: {client, server}; {-1, -1} when loopback
// cannot be used.
inline std::pair<int, int> TcpPair() {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(listener);
    return {-1, -1};
  }
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(client);
    close(listener);
    return {-1, -1};
  }
  int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  fcntl(client, F_SETFL, O_NONBLOCK);
  fcntl(server, F_SETFL, O_NONBLOCK);
  return {client, server};
}

}  // namespace camtunnel::agent::test_util
