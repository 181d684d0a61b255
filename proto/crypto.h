// Keyed hashing for camtunnel/1 (PROTOCOL.md sections 2, 3, 7): HMAC-SHA256 over length-prefixed
// messages, key derivation, proofs, plain-mode session keys and frame MACs. Pure functions over
// OpenSSL's libcrypto; no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "proto/identifiers.h"

namespace camtunnel::proto {

using Digest = std::array<uint8_t, 32>;
using FrameMacBytes = std::array<uint8_t, 16>;

Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> message);
Digest Sha256(std::span<const uint8_t> message);
// HMAC over LP(part) for each part in order (u16 big-endian length + bytes).
// Parts longer than 65535 bytes are a programming error (asserted).
Digest HmacLengthPrefixed(std::span<const uint8_t> key,
                          std::initializer_list<std::span<const uint8_t>> parts);
// Appends LP(part) to `out` (the same encoding; parts over 65535 bytes abort).
void AppendLengthPrefixed(std::vector<uint8_t>& out, std::span<const uint8_t> part);
// Constant time in the length of the inputs; unequal lengths compare unequal.
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

enum class Transport { kTls, kPlain };
std::string_view TransportName(Transport t);  // "tls" / "plain"

// K = HMAC(streamer_key, LP("camtunnel/1 agent-key") LP(agent) LP(key id) LP(expiry)).
Digest DeriveAgentKey(std::span<const uint8_t> streamer_key, std::string_view agent_id,
                      const KeyRef& key_ref);

struct HandshakeProofInput {
  std::string_view agent_id;
  const KeyRef* key_ref = nullptr;
  std::span<const uint8_t> agent_nonce;
  std::span<const uint8_t> gateway_nonce;
  Transport transport = Transport::kTls;
  std::span<const uint8_t> exporter;  // 32 bytes with TLS, empty in plain mode
};
Digest GatewayProof(const Digest& agent_key, const HandshakeProofInput& in);
Digest AgentProof(const Digest& agent_key, const HandshakeProofInput& in);

struct DataProofInput {
  std::string_view agent_id;
  const KeyRef* key_ref = nullptr;
  TunnelId tunnel_id = 0;
  std::span<const uint8_t> open_nonce;
  Transport transport = Transport::kTls;
  std::span<const uint8_t> exporter;
};
Digest DataProof(const Digest& agent_key, const DataProofInput& in);

// Plain mode only.
Digest SessionKey(const Digest& agent_key, std::span<const uint8_t> agent_nonce,
                  std::span<const uint8_t> gateway_nonce);
enum class Direction { kAgentToGateway, kGatewayToAgent };
FrameMacBytes FrameMac(const Digest& session_key, Direction direction, uint64_t sequence,
                       uint8_t type, std::span<const uint8_t> payload_without_mac);

// ChaCha20-Poly1305 of one 32-byte secret (a key or an agent secret) under `key`, with a
// 12-byte `nonce` and associated data `aad`: ciphertext (32) || tag (16). ChaCha20 rather than
// AES-GCM because the agent runs on camera CPUs that often lack AES instructions.
inline constexpr size_t kAeadNonceBytes = 12;
inline constexpr size_t kAeadTagBytes = 16;
std::array<uint8_t, 32 + kAeadTagBytes> SealDigest(const Digest& key,
                                                   std::span<const uint8_t> nonce,
                                                   std::span<const uint8_t> aad,
                                                   const Digest& plain);
// nullopt when `sealed` (48 bytes) was forged, corrupted, or sealed under other associated data.
std::optional<Digest> OpenDigest(const Digest& key, std::span<const uint8_t> nonce,
                                 std::span<const uint8_t> aad, std::span<const uint8_t> sealed);

// Fills `out` from the OS CSPRNG (RAND_bytes); aborts if it fails (no safe way to continue).
void RandomBytes(std::span<uint8_t> out);

// The TLS exporter label and length used for the binding (PROTOCOL.md section 3).
inline constexpr std::string_view kExporterLabel = "EXPORTER-camtunnel";
inline constexpr size_t kExporterBytes = 32;

}  // namespace camtunnel::proto
