// Keyed hashing for camtunnel/1 (PROTOCOL.md sections 2, 3, 7): HMAC-SHA256 over length-prefixed
// messages, key derivation, proofs, plain-mode session keys and frame MACs. Pure functions over
// OpenSSL's libcrypto; no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

#include "proto/identifiers.h"

namespace camtunnel::proto {

using Digest = std::array<uint8_t, 32>;
using FrameMacBytes = std::array<uint8_t, 16>;

Digest HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> message);
// HMAC over LP(part) for each part in order (u16 big-endian length + bytes).
// Parts longer than 65535 bytes are a programming error (asserted).
Digest HmacLengthPrefixed(std::span<const uint8_t> key,
                          std::initializer_list<std::span<const uint8_t>> parts);
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

// Fills `out` from the OS CSPRNG (RAND_bytes); aborts if it fails (no safe way to continue).
void RandomBytes(std::span<uint8_t> out);

// The TLS exporter label and length used for the binding (PROTOCOL.md section 3).
inline constexpr std::string_view kExporterLabel = "EXPORTER-camtunnel";
inline constexpr size_t kExporterBytes = 32;

}  // namespace camtunnel::proto
