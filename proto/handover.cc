// See handover.h.
#include "proto/handover.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "proto/encoding.h"

namespace camtunnel::proto {
namespace {

std::vector<uint8_t> SecretAad(std::string_view serial, std::span<const uint8_t> request_nonce) {
  std::vector<uint8_t> aad;
  AppendLengthPrefixed(aad, AsBytes("camtunnel/1 handover-secret"));
  AppendLengthPrefixed(aad, AsBytes(serial));
  AppendLengthPrefixed(aad, request_nonce);
  return aad;
}

}  // namespace

HandoverKeys DeriveHandoverKeys(std::span<const uint8_t> handover_key) {
  return {.mac_key = HmacLengthPrefixed(handover_key, {AsBytes("camtunnel/1 handover-mac")}),
          .seal_key = HmacLengthPrefixed(handover_key, {AsBytes("camtunnel/1 handover-seal")})};
}

Digest HandoverRequestMac(const HandoverKeys& keys, std::string_view body) {
  return HmacLengthPrefixed(keys.mac_key, {AsBytes("camtunnel/1 handover-request"), AsBytes(body)});
}

std::vector<uint8_t> SealHandoverSecret(const HandoverKeys& keys, std::string_view serial,
                                        std::span<const uint8_t> request_nonce,
                                        const AgentSecret& secret,
                                        std::span<const uint8_t> seal_nonce) {
  Digest plain;
  std::copy(secret.begin(), secret.end(), plain.begin());
  const auto sealed =
      SealDigest(keys.seal_key, seal_nonce, SecretAad(serial, request_nonce), plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  std::vector<uint8_t> out(seal_nonce.begin(), seal_nonce.end());
  out.insert(out.end(), sealed.begin(), sealed.end());
  return out;
}

std::optional<AgentSecret> OpenHandoverSecret(const HandoverKeys& keys, std::string_view serial,
                                              std::span<const uint8_t> request_nonce,
                                              std::span<const uint8_t> sealed) {
  if (sealed.size() != kHandoverSealedBytes) {
    return std::nullopt;
  }
  auto plain = OpenDigest(keys.seal_key, sealed.first(kAeadNonceBytes),
                          SecretAad(serial, request_nonce), sealed.subspan(kAeadNonceBytes));
  if (!plain) {
    return std::nullopt;
  }
  AgentSecret out;
  std::copy(plain->begin(), plain->end(), out.begin());
  OPENSSL_cleanse(plain->data(), plain->size());
  return out;
}

}  // namespace camtunnel::proto
