// Validation and formatting of camtunnel/1 identifiers (PROTOCOL.md section 1). Every check is an
// allow-list: an identifier is either exactly canonical or rejected.
#include "proto/identifiers.h"

#include <arpa/inet.h>

#include <charconv>

namespace camtunnel::proto {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Decimal without sign or leading zeros ("0" alone is fine), at most `max_digits` digits and at
// most `max_value`. std::from_chars alone would accept leading zeros.
std::optional<uint64_t> ParseCanonicalDecimal(std::string_view text, size_t max_digits,
                                              uint64_t max_value) {
  if (text.empty() || text.size() > max_digits || (text.size() > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (!IsDigit(c)) {
      return std::nullopt;
    }
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > max_value) {
    return std::nullopt;  // out of range (20 digits can exceed 2^64-1)
  }
  return value;
}

// A DNS host name: dot-separated labels of [A-Za-z0-9-], 1..63 each, no leading or trailing '-',
// at most 253 characters. A trailing dot (absolute name) is not accepted: the agent connects to
// a configured local service, there is no search path to escape.
bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      std::string_view label = host.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return false;
      }
      label_start = i + 1;
    } else if (!IsAlnum(host[i]) && host[i] != '-') {
      return false;
    }
  }
  return true;
}

bool IsIpLiteral(int family, std::string_view text) {
  char buf[64];
  if (text.size() >= sizeof(buf)) {
    return false;
  }
  text.copy(buf, text.size());
  buf[text.size()] = '\0';
  unsigned char addr[16];
  return inet_pton(family, buf, addr) == 1;
}

}  // namespace

// A host that consists only of digits and dots must be a valid IPv4 address: "1.2.3.999" is
// not a host name either, and rejecting it here beats a resolver surprise on the camera.
bool IsValidServiceHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return IsIpLiteral(AF_INET6, host.substr(1, host.size() - 2));
  }
  if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
    return IsIpLiteral(AF_INET, host);
  }
  return IsHostName(host);
}

bool IsCanonicalAgentId(std::string_view id) {
  if (id.empty() || id.size() > 63 || id.front() == '-' || id.back() == '-') {
    return false;
  }
  for (char c : id) {
    if (!IsLowerAlnum(c) && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidKeyId(std::string_view key_id) {
  if (key_id.empty() || key_id.size() > 32) {
    return false;
  }
  for (char c : key_id) {
    if (!IsAlnum(c) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 32) {
    return false;
  }
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-') {
      return false;
    }
  }
  return true;
}

std::optional<KeyRef> ParseKeyRef(std::string_view text) {
  // Key ids cannot contain '.', so the first dot is the separator; a second one makes the expiry
  // invalid.
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view key_id = text.substr(0, dot);
  if (!IsValidKeyId(key_id)) {
    return std::nullopt;
  }
  auto expiry = ParseCanonicalDecimal(text.substr(dot + 1), 20, UINT64_MAX);
  if (!expiry) {
    return std::nullopt;
  }
  return KeyRef{std::string(key_id), *expiry};
}

std::string FormatKeyRef(const KeyRef& ref) {
  return ref.key_id + "." + std::to_string(ref.expiry);
}

std::string FormatTunnelId(TunnelId id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[id & 0xf];
    id >>= 4;
  }
  return out;
}

std::optional<TunnelId> ParseTunnelId(std::string_view text) {
  if (text.size() != 16) {
    return std::nullopt;
  }
  TunnelId id = 0;
  for (char c : text) {
    unsigned nibble;
    if (c >= '0' && c <= '9') {
      nibble = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      nibble = c - 'a' + 10;
    } else {
      return std::nullopt;  // upper case is not canonical
    }
    id = (id << 4) | nibble;
  }
  return id;
}

std::optional<ServiceEntry> ParseServiceEntry(std::string_view text) {
  size_t eq = text.find('=');
  size_t colon = text.rfind(':');
  if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq) {
    return std::nullopt;
  }
  std::string_view name = text.substr(0, eq);
  std::string_view host = text.substr(eq + 1, colon - eq - 1);
  auto port = ParseCanonicalDecimal(text.substr(colon + 1), 5, 65535);
  if (!IsValidServiceName(name) || !IsValidServiceHost(host) || !port || *port == 0) {
    return std::nullopt;
  }
  return ServiceEntry{std::string(name), std::string(host), static_cast<uint16_t>(*port)};
}

std::string FormatServiceEntry(const ServiceEntry& entry) {
  return entry.name + "=" + entry.host + ":" + std::to_string(entry.port);
}

}  // namespace camtunnel::proto
