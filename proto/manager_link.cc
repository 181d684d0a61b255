// The manager link (PROTOCOL.md section 10). Sealing uses ChaCha20-Poly1305 rather than AES-GCM
// because the agent runs on camera CPUs that often lack AES instructions (DESIGN.md "TLS").
#include "proto/manager_link.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>

#include "proto/check.h"
#include "proto/encoding.h"
#include "proto/upgrade.h"
#include "proto/url.h"

namespace camtunnel::proto {
namespace {

constexpr std::string_view kSealLabel = "camtunnel/1 key-seal";

Digest LinkProof(std::string_view label, const AgentSecret& secret, const ManagerProofInput& in) {
  return HmacLengthPrefixed(secret,
                            {AsBytes(label), AsBytes(in.agent_id), in.agent_nonce, in.manager_nonce,
                             AsBytes(TransportName(in.transport)), in.exporter});
}

// Splits `in` into exactly `n` LP() parts; false unless they fill it exactly.
bool SplitLp(std::span<const uint8_t> in, size_t n, std::span<const uint8_t>* parts) {
  for (size_t i = 0; i < n; ++i) {
    if (in.size() < 2) {
      return false;
    }
    const size_t len = (size_t{in[0]} << 8) | in[1];
    if (in.size() - 2 < len) {
      return false;
    }
    parts[i] = in.subspan(2, len);
    in = in.subspan(2 + len);
  }
  return in.empty();
}

std::vector<uint8_t> SealAad(std::string_view agent_id, std::string_view url,
                             std::string_view key_ref) {
  std::vector<uint8_t> aad;
  AppendLengthPrefixed(aad, AsBytes(kSealLabel));
  AppendLengthPrefixed(aad, AsBytes(agent_id));
  AppendLengthPrefixed(aad, AsBytes(url));
  AppendLengthPrefixed(aad, AsBytes(key_ref));
  return aad;
}

}  // namespace

Digest ManagerProof(const AgentSecret& secret, const ManagerProofInput& in) {
  return LinkProof("camtunnel/1 manager-proof", secret, in);
}

Digest ManagerAgentProof(const AgentSecret& secret, const ManagerProofInput& in) {
  return LinkProof("camtunnel/1 manager-agent-proof", secret, in);
}

Digest ManagerSessionKey(const AgentSecret& secret, std::span<const uint8_t> agent_nonce,
                         std::span<const uint8_t> manager_nonce) {
  return HmacLengthPrefixed(
      secret, {AsBytes("camtunnel/1 manager-session-key"), agent_nonce, manager_nonce});
}

Digest FactorySecret(std::span<const uint8_t> master_key, std::string_view serial) {
  return HmacLengthPrefixed(master_key, {AsBytes("camtunnel/1 factory-secret"), AsBytes(serial)});
}

Digest ReactivationProof(const AgentSecret& secret, std::string_view agent_id) {
  return HmacLengthPrefixed(secret, {AsBytes("camtunnel/1 reactivate"), AsBytes(agent_id)});
}

Digest KeySealKey(const AgentSecret& secret, std::string_view agent_id) {
  return HmacLengthPrefixed(secret, {AsBytes(kSealLabel), AsBytes(agent_id)});
}

bool IsValidStreamerUrl(std::string_view url) {
  if (url.size() > kMaxStreamerUrl) {
    return false;
  }
  // The agent dials it with the same parser (its ParseGatewayUrl): a manager URL accepted here
  // but refused there sends the agent back to activation, over and over, with the same answer.
  const std::optional<Url> parsed = ParseUrl(url);
  return parsed && (parsed->scheme == "https" || parsed->scheme == "http");
}

std::vector<uint8_t> EncodeAssignedStreamer(const Digest& seal_key, std::string_view agent_id,
                                            const AssignedStreamer& streamer,
                                            std::span<const uint8_t> seal_nonce) {
  if (seal_nonce.size() != kSealNonceBytes) {
    CT_FATAL("seal nonce must be 12 bytes");
  }
  const std::string ref = FormatKeyRef(streamer.key_ref);
  const std::vector<uint8_t> aad = SealAad(agent_id, streamer.url, ref);
  const auto sealed = SealDigest(seal_key, seal_nonce, aad, streamer.agent_key);
  std::vector<uint8_t> sealed_field(seal_nonce.begin(), seal_nonce.end());
  sealed_field.insert(sealed_field.end(), sealed.begin(), sealed.end());
  std::vector<uint8_t> out;
  AppendLengthPrefixed(out, AsBytes(streamer.url));
  AppendLengthPrefixed(out, AsBytes(ref));
  AppendLengthPrefixed(out, sealed_field);
  return out;
}

std::string_view StreamerFieldErrorName(StreamerFieldError e) {
  switch (e) {
    case StreamerFieldError::kMalformed:
      return "malformed streamer field";
    case StreamerFieldError::kBadUrl:
      return "bad streamer URL";
    case StreamerFieldError::kBadKeyRef:
      return "bad key reference";
    case StreamerFieldError::kBadSeal:
      return "sealed key does not open";
  }
  return "?";
}

StreamerFieldParse DecodeAssignedStreamer(const Digest& seal_key, std::string_view agent_id,
                                          std::span<const uint8_t> value) {
  std::span<const uint8_t> parts[3];
  if (!SplitLp(value, 3, parts) || parts[2].size() != kSealedKeyBytes) {
    return {.error = StreamerFieldError::kMalformed};
  }
  const std::string_view url(reinterpret_cast<const char*>(parts[0].data()), parts[0].size());
  const std::string_view ref_text(reinterpret_cast<const char*>(parts[1].data()), parts[1].size());
  if (!IsValidStreamerUrl(url)) {
    return {.error = StreamerFieldError::kBadUrl};
  }
  auto ref = ParseKeyRef(ref_text);
  if (!ref) {
    return {.error = StreamerFieldError::kBadKeyRef};
  }
  const std::vector<uint8_t> aad = SealAad(agent_id, url, ref_text);
  auto key =
      OpenDigest(seal_key, parts[2].first(kSealNonceBytes), aad, parts[2].subspan(kSealNonceBytes));
  if (!key) {
    return {.error = StreamerFieldError::kBadSeal};
  }
  AssignedStreamer out{.url = std::string(url), .key_ref = *ref, .agent_key = *key};
  OPENSSL_cleanse(key->data(), key->size());
  return {.streamer = std::move(out)};
}

FrameBuilder BuildAssign(const Digest& seal_key, std::string_view agent_id,
                         std::span<const AssignedStreamer> streamers) {
  FrameBuilder frame(FrameType::kAssign);
  for (const AssignedStreamer& s : streamers) {
    uint8_t nonce[kSealNonceBytes];
    RandomBytes(nonce);
    frame.Add(Tag::kStreamer, EncodeAssignedStreamer(seal_key, agent_id, s, nonce));
  }
  return frame;
}

std::optional<std::vector<AssignedStreamer>> ParseAssign(const Digest& seal_key,
                                                         std::string_view agent_id,
                                                         const Frame& frame, std::string* error) {
  std::vector<AssignedStreamer> out;
  for (const Field& f : frame.fields()) {
    if (f.tag != static_cast<uint8_t>(Tag::kStreamer)) {
      continue;
    }
    if (out.size() == kMaxAssignedStreamers) {
      *error = "ASSIGN lists more than " + std::to_string(kMaxAssignedStreamers) + " Streamers";
      return std::nullopt;
    }
    StreamerFieldParse parsed = DecodeAssignedStreamer(seal_key, agent_id, f.value);
    if (!parsed.streamer) {
      *error = "ASSIGN entry " + std::to_string(out.size()) + ": " +
               std::string(StreamerFieldErrorName(parsed.error));
      return std::nullopt;
    }
    out.push_back(std::move(*parsed.streamer));
  }
  if (out.empty()) {
    *error = "ASSIGN without any Streamer";
    return std::nullopt;
  }
  return out;
}

std::string BuildManagerRequest(std::string_view host, std::string_view agent_id,
                                const Nonce& agent_nonce) {
  std::string out;
  out.reserve(256);
  out.append("GET ").append(kManagerPath).append(" HTTP/1.1\r\nHost: ").append(host);
  out.append("\r\nConnection: Upgrade\r\nUpgrade: ").append(kUpgradeToken);
  out.append("\r\nCamtunnel-Agent: ").append(agent_id);
  out.append("\r\nCamtunnel-Nonce: ").append(Base64UrlEncode(agent_nonce));
  out.append("\r\n\r\n");
  return out;
}

std::optional<ManagerUpgrade> ParseManagerRequest(const RequestHead& head) {
  if (head.method != "GET" || head.target != kManagerPath) {
    return std::nullopt;
  }
  bool upgrade = false;
  bool connection = false;
  for (size_t i = 0; i < head.headers.count; ++i) {
    const HeaderField& f = head.headers.fields[i];
    upgrade |= EqualsIgnoreCase(f.name, "Upgrade") && HeaderHasToken(f.value, kUpgradeToken);
    connection |= EqualsIgnoreCase(f.name, "Connection") && HeaderHasToken(f.value, "Upgrade");
  }
  if (!upgrade || !connection || head.headers.Count("Camtunnel-Agent") != 1 ||
      head.headers.Count("Camtunnel-Nonce") != 1) {
    return std::nullopt;
  }
  const std::string_view agent = *head.headers.Find("Camtunnel-Agent");
  const std::string_view nonce_text = *head.headers.Find("Camtunnel-Nonce");
  if (!IsCanonicalAgentId(agent) || nonce_text.size() != 22) {
    return std::nullopt;
  }
  auto nonce = Base64UrlDecode(nonce_text);
  if (!nonce || nonce->size() != kNonceBytes) {
    return std::nullopt;
  }
  ManagerUpgrade out;
  out.agent_id = std::string(agent);
  std::copy(nonce->begin(), nonce->end(), out.agent_nonce.begin());
  return out;
}

}  // namespace camtunnel::proto
