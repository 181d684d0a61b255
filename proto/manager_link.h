// The manager link (PROTOCOL.md section 10): how an agent and its managing server prove to each
// other that they share the agent secret S, and how derived gateway keys travel in ASSIGN,
// sealed with AEAD under a key derived from S. Pure functions; no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/http_head.h"
#include "proto/identifiers.h"

namespace camtunnel::proto {

inline constexpr std::string_view kManagerPath = "/camtunnel/v1/manager";
inline constexpr size_t kAgentSecretBytes = 32;
using AgentSecret = std::array<uint8_t, kAgentSecretBytes>;

// At most this many Streamers in one ASSIGN: a camera keeps the list in RAM, and failover
// through more than a handful of gateways is a fleet problem for the manager, not the agent.
inline constexpr size_t kMaxAssignedStreamers = 8;
inline constexpr size_t kMaxStreamerUrl = 255;
// nonce(12) | ciphertext(32) | tag(16), ChaCha20-Poly1305.
inline constexpr size_t kSealNonceBytes = kAeadNonceBytes;
inline constexpr size_t kSealTagBytes = kAeadTagBytes;
inline constexpr size_t kSealedKeyBytes = kSealNonceBytes + 32 + kSealTagBytes;

// Proofs of the manager upgrade (keyed with S, same shape as the gateway proofs, without a key
// reference): "camtunnel/1 manager-proof" (in the 101) and "camtunnel/1 manager-agent-proof"
// (in HELLO), over agent id, agent nonce, manager nonce, transport, exporter.
struct ManagerProofInput {
  std::string_view agent_id;
  std::span<const uint8_t> agent_nonce;
  std::span<const uint8_t> manager_nonce;
  Transport transport = Transport::kTls;
  std::span<const uint8_t> exporter;  // 32 bytes with TLS, empty in plain mode
};
Digest ManagerProof(const AgentSecret& secret, const ManagerProofInput& in);
Digest ManagerAgentProof(const AgentSecret& secret, const ManagerProofInput& in);
// Plain mode: the session key of section 7, keyed with S instead of K.
Digest ManagerSessionKey(const AgentSecret& secret, std::span<const uint8_t> agent_nonce,
                         std::span<const uint8_t> manager_nonce);

// Per-device factory secret (PROTOCOL.md section 10.1), written into one camera at the factory:
// HMAC(factory master key, LP("camtunnel/1 factory-secret") LP(serial)). One dumped firmware
// yields one camera's secret, never the master or another camera's.
Digest FactorySecret(std::span<const uint8_t> master_key, std::string_view serial);

// What an already activated agent shows to be activated again (section 10.1):
// HMAC(S, LP("camtunnel/1 reactivate") LP(agent id)).
Digest ReactivationProof(const AgentSecret& secret, std::string_view agent_id);

// Key that seals derived gateway keys for one agent:
// HMAC(S, LP("camtunnel/1 key-seal") LP(agent id)).
Digest KeySealKey(const AgentSecret& secret, std::string_view agent_id);

// One entry of an ASSIGN list.
struct AssignedStreamer {
  std::string url;  // gateway URL, "https://host[:port]" or "http://host[:port]"
  KeyRef key_ref;
  Digest agent_key{};  // K for this agent at this gateway (plaintext after Open)
  bool operator==(const AssignedStreamer&) const = default;
};

// Encodes the value of one `streamer` field: LP(url) LP(key ref) LP(sealed K), the key sealed
// with ChaCha20-Poly1305 under KeySealKey, nonce `seal_nonce` (random in production; fixed in
// test vectors), associated data LP("camtunnel/1 key-seal") LP(agent id) LP(url) LP(key ref).
std::vector<uint8_t> EncodeAssignedStreamer(const Digest& seal_key, std::string_view agent_id,
                                            const AssignedStreamer& streamer,
                                            std::span<const uint8_t> seal_nonce);
enum class StreamerFieldError { kMalformed, kBadUrl, kBadKeyRef, kBadSeal };
std::string_view StreamerFieldErrorName(StreamerFieldError e);
struct StreamerFieldParse {
  std::optional<AssignedStreamer> streamer;
  StreamerFieldError error = StreamerFieldError::kMalformed;
};
StreamerFieldParse DecodeAssignedStreamer(const Digest& seal_key, std::string_view agent_id,
                                          std::span<const uint8_t> value);

// "https://host[:port]" or "http://host[:port]", host a DNS name, IPv4 or [IPv6] as
// IsValidServiceHost defines them, at most kMaxStreamerUrl bytes, optional single trailing '/'.
// The syntax both ends accept, and exactly what the agent can dial.
bool IsValidStreamerUrl(std::string_view url);

// Builds ASSIGN (every entry sealed with a fresh random nonce).
FrameBuilder BuildAssign(const Digest& seal_key, std::string_view agent_id,
                         std::span<const AssignedStreamer> streamers);
// Parses an ASSIGN: 1..kMaxAssignedStreamers entries, each unsealed. nullopt (with `*error`)
// on anything else: the whole list is rejected, never half applied.
std::optional<std::vector<AssignedStreamer>> ParseAssign(const Digest& seal_key,
                                                         std::string_view agent_id,
                                                         const Frame& frame, std::string* error);

// The manager link upgrade request (agent id + agent nonce; no key reference).
std::string BuildManagerRequest(std::string_view host, std::string_view agent_id,
                                const Nonce& agent_nonce);
struct ManagerUpgrade {
  std::string agent_id;
  Nonce agent_nonce{};
};
// nullopt unless GET kManagerPath with the upgrade headers, a canonical agent id and a nonce,
// each Camtunnel-* header exactly once.
std::optional<ManagerUpgrade> ParseManagerRequest(const RequestHead& head);

}  // namespace camtunnel::proto
