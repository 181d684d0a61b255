// Canonical identifiers of camtunnel/1 (PROTOCOL.md section 1): agent ids, key ids, key
// references, nonces, tunnel ids, service names. Validation is strict on purpose: an identifier
// is rejected where it enters, never "fixed".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace camtunnel::proto {

inline constexpr size_t kNonceBytes = 16;
inline constexpr size_t kProofBytes = 32;
using Nonce = std::array<uint8_t, kNonceBytes>;

// DNS label: 1..63 of [a-z0-9-], no leading or trailing '-'.
bool IsCanonicalAgentId(std::string_view id);
// 1..32 of [A-Za-z0-9_-].
bool IsValidKeyId(std::string_view key_id);
// 1..32 of [a-z0-9-].
bool IsValidServiceName(std::string_view name);

// "<key id>.<expiry unix seconds>".
struct KeyRef {
  std::string key_id;
  uint64_t expiry = 0;
  bool operator==(const KeyRef&) const = default;
};
std::optional<KeyRef> ParseKeyRef(std::string_view text);
std::string FormatKeyRef(const KeyRef& ref);

// Tunnel id: 64 bits, top 8 = issuing shard, low 56 random; 16 lowercase hex characters.
using TunnelId = uint64_t;
inline constexpr unsigned kTunnelShardShift = 56;
inline unsigned TunnelShard(TunnelId id) { return static_cast<unsigned>(id >> kTunnelShardShift); }
std::string FormatTunnelId(TunnelId id);
std::optional<TunnelId> ParseTunnelId(std::string_view text);

// A service the agent exposes: "name=host:port". `host` is kept as written: a host name, an
// IPv4 address, or an IPv6 address in brackets ("[::1]", ready for a URL; strip them to resolve).
struct ServiceEntry {
  std::string name;
  std::string host;
  uint16_t port = 0;
  bool operator==(const ServiceEntry&) const = default;
};
std::optional<ServiceEntry> ParseServiceEntry(std::string_view text);
std::string FormatServiceEntry(const ServiceEntry& entry);
// The one definition of a host, shared by service entries and the agent's gateway, manager and
// Streamer URLs: a DNS name (labels of 1..63 [A-Za-z0-9-], at most 253 characters), a valid
// IPv4 address, or a valid IPv6 address in brackets.
bool IsValidServiceHost(std::string_view host);

}  // namespace camtunnel::proto
