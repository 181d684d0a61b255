#include "agentsim/url_endpoint.h"

#include <arpa/inet.h>

#include "absl/status/status.h"
#include "agentsim/options.h"

namespace camtunnel::agentsim {

absl::StatusOr<UrlEndpoint> ParseUrlEndpoint(std::string_view url) {
  UrlEndpoint e;
  e.url = std::string(url);
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
    e.tls = false;
  } else {
    return absl::InvalidArgumentError("'" + e.url + "': want https:// or http://");
  }
  if (rest.ends_with('/')) {
    rest.remove_suffix(1);
  }
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError("'" + e.url + "': want scheme://host[:port] only");
  }
  e.host = std::string(rest);
  // The host part ends at the port's colon, which for [v6] comes after the bracket.
  const size_t bracket = rest.find(']');
  const size_t colon = rest.find(':', bracket == std::string_view::npos ? 0 : bracket);
  const std::string host(rest.substr(0, colon));
  const std::string port = colon == std::string_view::npos ? (e.tls ? "443" : "80")
                                                           : std::string(rest.substr(colon + 1));
  auto address = ParseConnectAddress(host + ":" + port);
  if (!address.ok()) {
    return address.status();
  }
  e.address = *address;
  in_addr a4;
  if (!host.starts_with('[') && inet_pton(AF_INET, host.c_str(), &a4) != 1) {
    e.server_name = host;
  }
  return e;
}

absl::StatusOr<const UrlEndpoint*> UrlEndpoints::Find(std::string_view url) {
  const std::string key(url);
  if (auto it = endpoints_.find(key); it != endpoints_.end()) {
    return it->second.get();
  }
  auto parsed = ParseUrlEndpoint(url);
  if (!parsed.ok()) {
    return parsed.status();
  }
  auto& slot = endpoints_[key];
  slot = std::make_unique<UrlEndpoint>(std::move(*parsed));
  return slot.get();
}

}  // namespace camtunnel::agentsim
