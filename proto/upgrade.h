// The camtunnel/1 upgrade heads (PROTOCOL.md sections 4 and 8): building them, and extracting
// and validating their fields from a parsed request or response head.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "proto/crypto.h"
#include "proto/http_head.h"
#include "proto/identifiers.h"

namespace camtunnel::proto {

inline constexpr std::string_view kControlPath = "/camtunnel/v1/control";
inline constexpr std::string_view kDataPath = "/camtunnel/v1/data";
inline constexpr std::string_view kUpgradeToken = "camtunnel/1";

enum class UpgradeKind { kControl, kData };

// What a gateway extracts from an agent's upgrade request.
struct UpgradeRequest {
  UpgradeKind kind = UpgradeKind::kControl;
  std::string agent_id;
  KeyRef key_ref;
  Nonce agent_nonce{};     // control only
  TunnelId tunnel_id = 0;  // data only
  Digest proof{};          // data only
};

enum class UpgradeError {
  kNotUpgrade,       // not GET to a camtunnel path with Upgrade: camtunnel/1 (answer 400)
  kBadAgentId,       // 400
  kBadKeyRef,        // 400
  kBadNonce,         // 400
  kBadTunnelId,      // 400
  kBadProofSyntax,   // 400
  kDuplicateHeader,  // 400
};
std::string_view UpgradeErrorName(UpgradeError e);

// Returns the request or the reason it is not a valid camtunnel/1 upgrade.
struct UpgradeParse {
  std::optional<UpgradeRequest> request;
  UpgradeError error = UpgradeError::kNotUpgrade;
};
UpgradeParse ParseUpgradeRequest(const RequestHead& head);

std::string BuildControlRequest(std::string_view host, std::string_view agent_id,
                                const KeyRef& key_ref, const Nonce& agent_nonce);
std::string BuildDataRequest(std::string_view host, std::string_view agent_id,
                             const KeyRef& key_ref, TunnelId tunnel_id, const Digest& proof);

// Gateway's 101 for a control connection (nonce + proof) and for a data connection.
std::string BuildControlAccept(const Nonce& gateway_nonce, const Digest& gateway_proof);
std::string BuildDataAccept();
// Error answer with Content-Length, Connection: close and a one-line text body.
std::string BuildUpgradeError(int status, std::string_view reason_text);

// Agent side: pulls the gateway nonce and proof out of a 101 answer.
struct ControlAccept {
  Nonce gateway_nonce{};
  Digest gateway_proof{};
};
std::optional<ControlAccept> ParseControlAccept(const ResponseHead& head);

}  // namespace camtunnel::proto
