// The HTTP CONNECT proxy the agent may be told to use for every connection it makes to a
// gateway, the manager or the activation server (never for the camera's local services).
// Through a proxy the agent does not resolve the server's name itself: the proxy does, as
// networks that force a proxy often give clients no DNS for outside names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace camtunnel::agent {

struct ProxyConfig {
  std::string host;  // a name or address literal, IPv6 without brackets
  uint16_t port = 0;
  // "Basic <base64 user:pass>" or empty. A secret: never logged.
  std::string authorization;
  std::string text;  // "http://host:port", without credentials, for logs
};

// `http://[USER[:PASS]@]HOST:PORT[/]`; USER and PASS may be percent-encoded (a ':' or '@' in a
// password must be). The port is required: proxies have no common default.
bool ParseProxyUrl(std::string_view text, ProxyConfig* out, std::string* error);

// The CONNECT request head for `host`:`port` (IPv6 bracketed in the authority).
std::string BuildConnectRequest(const ProxyConfig& proxy, const std::string& host, uint16_t port);

}  // namespace camtunnel::agent
