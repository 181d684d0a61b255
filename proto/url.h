// The one grammar of the server URLs camtunnel takes and hands out (a gateway, manager,
// activation server, Streamer, admin or frontend URL): `scheme://host[:port]` with an optional
// trailing "/". host is a DNS name, an IPv4 address or a bracketed IPv6 address
// (IsValidServiceHost: the same definition as a service entry's host), port a canonical decimal
// 1..65535. No user info, path, query or fragment: each of these URLs names a server, never a
// resource, and one parser keeps the manager from handing out a URL the agent would refuse.
// Pure: no I/O, no resolution.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace camtunnel::proto {

struct Url {
  std::string scheme;  // "http", "https" or "rtsp", as written (lowercase)
  std::string host;    // as written: an IPv6 address keeps its brackets
  uint16_t port = 0;   // 0 when the URL has none (the caller knows its scheme's default)
  bool operator==(const Url&) const = default;
};

// nullopt for anything outside the grammar above, or a scheme other than http, https, rtsp.
std::optional<Url> ParseUrl(std::string_view text);

// The host for a resolver or a TLS name check: without the brackets of an IPv6 address.
std::string_view UnbracketedHost(const Url& url);

}  // namespace camtunnel::proto
