// See pin.h.
#include "agent/pin.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "proto/crypto.h"

namespace camtunnel::agent {
namespace {
constexpr std::string_view kPinPrefix = "sha256/";
constexpr size_t kPinBase64Chars = 44;  // 32 bytes -> 43 characters + one '='
}  // namespace

std::optional<std::vector<uint8_t>> ParsePin(std::string_view text) {
  if (text.substr(0, kPinPrefix.size()) != kPinPrefix) {
    return std::nullopt;
  }
  std::string b64(text.substr(kPinPrefix.size()));
  if (b64.size() == kPinBase64Chars - 1) {
    b64.push_back('=');
  }
  if (b64.size() != kPinBase64Chars || b64[kPinBase64Chars - 1] != '=' ||
      b64[kPinBase64Chars - 2] == '=') {
    return std::nullopt;
  }
  unsigned char decoded[33];  // EVP_DecodeBlock writes whole 3-byte groups
  int n = EVP_DecodeBlock(decoded, reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n != 33) {
    return std::nullopt;
  }
  std::vector<uint8_t> pin(decoded, decoded + kPinBytes);
  // EVP_DecodeBlock tolerates whitespace and non-zero trailing bits; re-encoding and comparing
  // rejects every non-canonical spelling.
  if (FormatPin(pin).substr(kPinPrefix.size()) != b64) {
    return std::nullopt;
  }
  return pin;
}

std::string FormatPin(std::span<const uint8_t> hash) {
  std::string out(kPinPrefix);
  unsigned char b64[4 * ((kPinBytes + 2) / 3) + 1];
  int n = EVP_EncodeBlock(b64, hash.data(), static_cast<int>(hash.size()));
  out.append(reinterpret_cast<const char*>(b64), n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::vector<uint8_t> SpkiSha256(x509_st* certificate) {
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate), &der);
  if (len <= 0) {
    return {};
  }
  std::vector<uint8_t> hash(SHA256_DIGEST_LENGTH);
  SHA256(der, static_cast<size_t>(len), hash.data());
  OPENSSL_free(der);
  return hash;
}

bool MatchesPin(std::span<const uint8_t> spki_hash, const PinSet& pins) {
  bool match = false;
  for (const auto& pin : pins) {
    match |= proto::ConstantTimeEqual(spki_hash, pin);
  }
  return match;
}

}  // namespace camtunnel::agent
