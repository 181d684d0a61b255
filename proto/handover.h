// The activation hand-over (PROTOCOL.md section 10.4): an activation server running as its own
// process asks the managing server, which owns the agents' records, to enrol a camera. The call
// is authenticated by a MAC under a hand-over key both hold, and the agent secret comes back
// sealed under that key, bound to the serial and to the request. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "proto/crypto.h"
#include "proto/manager_link.h"

namespace camtunnel::proto {

inline constexpr std::string_view kHandoverPath = "/api/v1/handover";
inline constexpr std::string_view kHandoverMacHeader = "Camtunnel-Handover-Mac";
inline constexpr size_t kHandoverKeyBytes = 32;
inline constexpr size_t kHandoverNonceBytes = 16;
// A request older or newer than this (against the managing server's clock) is refused; a nonce
// is remembered this long, so a recorded request cannot be sent again.
inline constexpr int64_t kHandoverWindowMs = 60000;
// seal nonce (12) || ChaCha20-Poly1305 ciphertext (32) || tag (16)
inline constexpr size_t kHandoverSealedBytes = kAeadNonceBytes + 32 + kAeadTagBytes;

struct HandoverKeys {
  Digest mac_key{};   // HMAC(H, LP("camtunnel/1 handover-mac"))
  Digest seal_key{};  // HMAC(H, LP("camtunnel/1 handover-seal"))
};
HandoverKeys DeriveHandoverKeys(std::span<const uint8_t> handover_key);

// HMAC(mac key, LP("camtunnel/1 handover-request") LP(body)), over the exact body bytes.
Digest HandoverRequestMac(const HandoverKeys& keys, std::string_view body);

// The agent secret for the activation server: sealed with `seal_nonce` (12 bytes, random in
// production), associated data LP("camtunnel/1 handover-secret") LP(serial) LP(request nonce).
std::vector<uint8_t> SealHandoverSecret(const HandoverKeys& keys, std::string_view serial,
                                        std::span<const uint8_t> request_nonce,
                                        const AgentSecret& secret,
                                        std::span<const uint8_t> seal_nonce);
// nullopt unless `sealed` is kHandoverSealedBytes that open for this serial and request.
std::optional<AgentSecret> OpenHandoverSecret(const HandoverKeys& keys, std::string_view serial,
                                              std::span<const uint8_t> request_nonce,
                                              std::span<const uint8_t> sealed);

}  // namespace camtunnel::proto
