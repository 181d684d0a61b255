// camtunnel/1 upgrade heads (PROTOCOL.md sections 4 and 8). Builders emit the exact bytes of the
// contract (header order included, so captures diff cleanly against it); the parsers accept any
// header order and case, but each camtunnel value in exactly one canonical form.
#include "proto/upgrade.h"

#include <algorithm>

#include "proto/encoding.h"
#include "proto/http_status.h"

namespace camtunnel::proto {
namespace {

constexpr size_t kNonceText = 22;  // base64url of 16 bytes, unpadded
constexpr size_t kProofText = 43;  // base64url of 32 bytes, unpadded
constexpr std::string_view kCamtunnelPrefix = "camtunnel-";

// Decodes unpadded base64url text of exactly N bytes. The text length is checked first so a
// hostile header never makes us decode (and allocate for) more than N bytes.
template <size_t N>
std::optional<std::array<uint8_t, N>> DecodeFixed(std::string_view text, size_t text_len) {
  if (text.size() != text_len) {
    return std::nullopt;
  }
  auto bytes = Base64UrlDecode(text);
  if (!bytes || bytes->size() != N) {
    return std::nullopt;
  }
  std::array<uint8_t, N> out;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

// Upgrade and Connection are lists and may legally be split over several field lines.
bool AnyFieldHasToken(const HeaderList& headers, std::string_view name, std::string_view token) {
  for (size_t i = 0; i < headers.count; ++i) {
    if (EqualsIgnoreCase(headers.fields[i].name, name) &&
        HeaderHasToken(headers.fields[i].value, token)) {
      return true;
    }
  }
  return false;
}

bool IsUpgradeTo(const HeaderList& headers) {
  return AnyFieldHasToken(headers, "Upgrade", kUpgradeToken) &&
         AnyFieldHasToken(headers, "Connection", "Upgrade");
}

// Any Camtunnel-* field given twice: two values for one field would let the gateway and a
// middlebox (or two code paths) disagree about which one counts.
bool HasDuplicateCamtunnelField(const HeaderList& headers) {
  for (size_t i = 0; i < headers.count; ++i) {
    std::string_view name = headers.fields[i].name;
    if (name.size() < kCamtunnelPrefix.size() ||
        !EqualsIgnoreCase(name.substr(0, kCamtunnelPrefix.size()), kCamtunnelPrefix)) {
      continue;
    }
    for (size_t j = i + 1; j < headers.count; ++j) {
      if (EqualsIgnoreCase(name, headers.fields[j].name)) {
        return true;
      }
    }
  }
  return false;
}

std::string RequestPrefix(std::string_view path, std::string_view host, std::string_view agent_id,
                          const KeyRef& key_ref) {
  std::string out;
  out.reserve(256);
  out.append("GET ").append(path).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(host).append("\r\n");
  out.append("Connection: Upgrade\r\n");
  out.append("Upgrade: ").append(kUpgradeToken).append("\r\n");
  out.append("Camtunnel-Agent: ").append(agent_id).append("\r\n");
  out.append("Camtunnel-Key: ").append(FormatKeyRef(key_ref)).append("\r\n");
  return out;
}

}  // namespace

std::string_view UpgradeErrorName(UpgradeError e) {
  switch (e) {
    case UpgradeError::kNotUpgrade:
      return "not-upgrade";
    case UpgradeError::kBadAgentId:
      return "bad-agent-id";
    case UpgradeError::kBadKeyRef:
      return "bad-key-ref";
    case UpgradeError::kBadNonce:
      return "bad-nonce";
    case UpgradeError::kBadTunnelId:
      return "bad-tunnel-id";
    case UpgradeError::kBadProofSyntax:
      return "bad-proof-syntax";
    case UpgradeError::kDuplicateHeader:
      return "duplicate-header";
  }
  return "unknown";
}

UpgradeParse ParseUpgradeRequest(const RequestHead& head) {
  UpgradeParse result;
  UpgradeRequest req;
  // Upgrade does not exist in HTTP/1.0 (and RTSP has no such thing).
  if (head.method != "GET" || head.protocol != Protocol::kHttp11) {
    result.error = UpgradeError::kNotUpgrade;
    return result;
  }
  if (head.target == kControlPath) {
    req.kind = UpgradeKind::kControl;
  } else if (head.target == kDataPath) {
    req.kind = UpgradeKind::kData;
  } else {
    result.error = UpgradeError::kNotUpgrade;
    return result;
  }
  if (!IsUpgradeTo(head.headers)) {
    result.error = UpgradeError::kNotUpgrade;
    return result;
  }
  if (HasDuplicateCamtunnelField(head.headers)) {
    result.error = UpgradeError::kDuplicateHeader;
    return result;
  }

  auto agent = head.headers.Find("Camtunnel-Agent");
  if (!agent || !IsCanonicalAgentId(*agent)) {
    result.error = UpgradeError::kBadAgentId;
    return result;
  }
  req.agent_id = std::string(*agent);

  auto key_text = head.headers.Find("Camtunnel-Key");
  auto key_ref = key_text ? ParseKeyRef(*key_text) : std::nullopt;
  if (!key_ref) {
    result.error = UpgradeError::kBadKeyRef;
    return result;
  }
  req.key_ref = std::move(*key_ref);

  if (req.kind == UpgradeKind::kControl) {
    auto nonce_text = head.headers.Find("Camtunnel-Nonce");
    auto nonce = nonce_text ? DecodeFixed<kNonceBytes>(*nonce_text, kNonceText) : std::nullopt;
    if (!nonce) {
      result.error = UpgradeError::kBadNonce;
      return result;
    }
    req.agent_nonce = *nonce;
  } else {
    auto tunnel_text = head.headers.Find("Camtunnel-Tunnel");
    auto tunnel = tunnel_text ? ParseTunnelId(*tunnel_text) : std::nullopt;
    if (!tunnel) {
      result.error = UpgradeError::kBadTunnelId;
      return result;
    }
    req.tunnel_id = *tunnel;
    auto proof_text = head.headers.Find("Camtunnel-Proof");
    auto proof = proof_text ? DecodeFixed<kProofBytes>(*proof_text, kProofText) : std::nullopt;
    if (!proof) {
      result.error = UpgradeError::kBadProofSyntax;
      return result;
    }
    req.proof = *proof;
  }
  result.request = std::move(req);
  return result;
}

std::string BuildControlRequest(std::string_view host, std::string_view agent_id,
                                const KeyRef& key_ref, const Nonce& agent_nonce) {
  std::string out = RequestPrefix(kControlPath, host, agent_id, key_ref);
  out.append("Camtunnel-Nonce: ").append(Base64UrlEncode(agent_nonce)).append("\r\n\r\n");
  return out;
}

std::string BuildDataRequest(std::string_view host, std::string_view agent_id,
                             const KeyRef& key_ref, TunnelId tunnel_id, const Digest& proof) {
  std::string out = RequestPrefix(kDataPath, host, agent_id, key_ref);
  out.append("Camtunnel-Tunnel: ").append(FormatTunnelId(tunnel_id)).append("\r\n");
  out.append("Camtunnel-Proof: ").append(Base64UrlEncode(proof)).append("\r\n\r\n");
  return out;
}

std::string BuildControlAccept(const Nonce& gateway_nonce, const Digest& gateway_proof) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: camtunnel/1\r\n";
  out.append("Camtunnel-Nonce: ").append(Base64UrlEncode(gateway_nonce)).append("\r\n");
  out.append("Camtunnel-Proof: ").append(Base64UrlEncode(gateway_proof)).append("\r\n\r\n");
  return out;
}

std::string BuildDataAccept() {
  return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: camtunnel/1\r\n\r\n";
}

std::string BuildUpgradeError(int status, std::string_view reason_text) {
  const std::string body = std::string(reason_text) + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out.append(HttpReasonPhrase(status)).append("\r\n");
  out.append("Content-Type: text/plain\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("Connection: close\r\n\r\n");
  out.append(body);
  return out;
}

std::optional<ControlAccept> ParseControlAccept(const ResponseHead& head) {
  if (head.status != 101 || head.protocol != Protocol::kHttp11 || !IsUpgradeTo(head.headers) ||
      HasDuplicateCamtunnelField(head.headers)) {
    return std::nullopt;
  }
  auto nonce_text = head.headers.Find("Camtunnel-Nonce");
  auto proof_text = head.headers.Find("Camtunnel-Proof");
  if (!nonce_text || !proof_text) {
    return std::nullopt;
  }
  auto nonce = DecodeFixed<kNonceBytes>(*nonce_text, kNonceText);
  auto proof = DecodeFixed<kProofBytes>(*proof_text, kProofText);
  if (!nonce || !proof) {
    return std::nullopt;
  }
  return ControlAccept{*nonce, *proof};
}

}  // namespace camtunnel::proto
