// See activation_message.h.
#include "proto/activation_message.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "proto/manager_order.h"

namespace camtunnel::proto {
namespace {

void SkipSpace(std::string_view& s) {
  while (!s.empty() && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
    s.remove_prefix(1);
  }
}

// A JSON string without escapes or control characters; false on anything else.
bool ReadString(std::string_view& s, std::string_view* out) {
  if (s.empty() || s[0] != '"') {
    return false;
  }
  for (size_t i = 1; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c < 0x20) {
      return false;
    }
    if (c == '"') {
      *out = s.substr(1, i - 1);
      s.remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string BuildActivationBody(std::string_view serial, const Digest& factory_secret,
                                std::string_view operator_id, const Digest* agent_proof) {
  // Every value is validated text (serial: agent id syntax; operator: caller-checked token),
  // so no escaping is needed; the caller rejects anything with '"' or '\\' before this.
  std::string out = "{\"serial\":\"";
  out.append(serial).append("\",\"factory_secret\":\"").append(HexEncode(factory_secret));
  out.append("\",\"operator\":\"").append(operator_id).append("\"");
  if (agent_proof != nullptr) {
    out.append(",\"agent_proof\":\"").append(HexEncode(*agent_proof)).append("\"");
  }
  out.append("}");
  return out;
}

std::optional<ActivationResult> ParseActivationResult(std::string_view body, std::string* error) {
  if (body.size() > kMaxActivationResponseBody) {
    *error = "activation answer over 4096 bytes";
    return std::nullopt;
  }
  std::string_view s = body;
  SkipSpace(s);
  if (s.empty() || s[0] != '{') {
    *error = "activation answer is not a JSON object";
    return std::nullopt;
  }
  s.remove_prefix(1);
  ActivationResult out;
  std::optional<std::string_view> id, url, urls, secret;
  bool first = true;
  for (;;) {
    SkipSpace(s);
    if (!s.empty() && s[0] == '}') {
      s.remove_prefix(1);
      break;
    }
    if (!first) {
      if (s.empty() || s[0] != ',') {
        *error = "activation answer: expected ',' or '}'";
        return std::nullopt;
      }
      s.remove_prefix(1);
      SkipSpace(s);
    }
    first = false;
    std::string_view key, value;
    if (!ReadString(s, &key)) {
      *error = "activation answer: expected a member name";
      return std::nullopt;
    }
    SkipSpace(s);
    if (s.empty() || s[0] != ':') {
      *error = "activation answer: expected ':'";
      return std::nullopt;
    }
    s.remove_prefix(1);
    SkipSpace(s);
    if (!ReadString(s, &value)) {
      *error = "activation answer: member values must be plain strings";
      return std::nullopt;
    }
    std::optional<std::string_view>* slot = key == "agent_id"       ? &id
                                            : key == "manager_url"  ? &url
                                            : key == "manager_urls" ? &urls
                                            : key == "agent_secret" ? &secret
                                                                    : nullptr;
    if (slot != nullptr) {
      if (slot->has_value()) {
        *error = "activation answer: duplicate member";
        return std::nullopt;
      }
      *slot = value;
    }
  }
  SkipSpace(s);
  if (!s.empty()) {
    *error = "activation answer: bytes after the object";
    return std::nullopt;
  }
  if (!id || !IsCanonicalAgentId(*id)) {
    *error = "activation answer: missing or bad agent_id";
    return std::nullopt;
  }
  out.agent_id = std::string(*id);
  // https (a TLS manager link) or http (a plain one, section 10.2): the manager's choice, and
  // this answer travels inside TLS, so the scheme is as trustworthy as the secret beside it. A
  // bad one does not void the answer: the secret beside it is issued once and must be kept.
  if (url && IsValidStreamerUrl(*url)) {
    out.manager_url = std::string(*url);
  } else {
    out.manager_url_problem = "missing or bad manager_url (https:// or http://host[:port])";
  }
  // Several managers (section 10.5): only usable URLs of manager_url's scheme are kept (an
  // https agent is never moved to plain links through a list).
  if (urls && !out.manager_url.empty()) {
    const std::string_view scheme =
        std::string_view(out.manager_url).substr(0, out.manager_url.find(':'));
    for (const std::string& u : SplitManagerList(*urls)) {
      if (out.manager_urls.size() < kMaxActivationManagers && IsValidStreamerUrl(u) &&
          u.starts_with(scheme) && u.size() > scheme.size() && u[scheme.size()] == ':') {
        out.manager_urls.push_back(u);
      }
    }
  }
  if (secret) {
    auto bytes = secret->size() == 64 ? HexDecode(*secret) : std::nullopt;
    if (!bytes || bytes->size() != kAgentSecretBytes) {
      *error = "activation answer: agent_secret must be 64 hex characters";
      return std::nullopt;
    }
    AgentSecret s_out;
    std::copy(bytes->begin(), bytes->end(), s_out.begin());
    OPENSSL_cleanse(bytes->data(), bytes->size());
    out.agent_secret = s_out;
  }
  return out;
}

}  // namespace camtunnel::proto
