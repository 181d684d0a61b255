// See url.h.
#include "proto/url.h"

#include "proto/identifiers.h"

namespace camtunnel::proto {
namespace {

// Canonical decimal 1..65535: no sign, no leading zero (as a service entry's port).
std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5 || text[0] == '0') {
    return std::nullopt;
  }
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

std::optional<Url> ParseUrl(std::string_view text) {
  const size_t separator = text.find("://");
  if (separator == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view scheme = text.substr(0, separator);
  if (scheme != "http" && scheme != "https" && scheme != "rtsp") {
    return std::nullopt;
  }
  std::string_view authority = text.substr(separator + 3);
  if (authority.ends_with('/')) {
    authority.remove_suffix(1);  // "https://gw/" is common; any other path is refused
  }
  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return std::nullopt;
      }
      port = after.substr(1);
      has_port = true;
    }
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (!IsValidServiceHost(host)) {
    return std::nullopt;
  }
  Url url{.scheme = std::string(scheme), .host = std::string(host)};
  if (has_port) {
    const std::optional<uint16_t> value = ParsePort(port);
    if (!value) {
      return std::nullopt;
    }
    url.port = *value;
  }
  return url;
}

std::string_view UnbracketedHost(const Url& url) {
  std::string_view host = url.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace camtunnel::proto
