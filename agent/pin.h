// Public-key pins for the gateway certificate: "sha256/<standard base64>" of the SHA-256 of the
// leaf certificate's DER SubjectPublicKeyInfo (the HPKP / curl --pinnedpubkey form). Agents pin
// a set (current and next key), never a single leaf, so a certificate renewal needs no update.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct x509_st;  // OpenSSL's X509, kept out of this header

namespace camtunnel::agent {

inline constexpr size_t kPinBytes = 32;
using PinSet = std::vector<std::vector<uint8_t>>;

// Parses "sha256/BASE64" (44 characters of base64 with its padding, or 43 without).
std::optional<std::vector<uint8_t>> ParsePin(std::string_view text);
std::string FormatPin(std::span<const uint8_t> hash);
// SHA-256 of the certificate's DER SubjectPublicKeyInfo; empty on failure.
std::vector<uint8_t> SpkiSha256(x509_st* certificate);
// Constant-time per pin; true if `spki_hash` equals any pin.
bool MatchesPin(std::span<const uint8_t> spki_hash, const PinSet& pins);

}  // namespace camtunnel::agent
