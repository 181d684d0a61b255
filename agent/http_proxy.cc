// See http_proxy.h.
#include "agent/http_proxy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <optional>

#include "agent/config.h"
#include "proto/encoding.h"

namespace camtunnel::agent {
namespace {

// RFC 3986 percent-decoding of a user-info part; nullopt on a bad escape or a control byte
// (which could split the Authorization header).
std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return std::nullopt;
      }
      const int hi = proto::HexDigitValue(text[i + 1]);
      const int lo = proto::HexDigitValue(text[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return std::nullopt;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

bool ParseProxyUrl(std::string_view text, ProxyConfig* out, std::string* error) {
  const std::string usage =
      "--proxy must be http://[USER:PASS@]HOST:PORT (HOST a name, IPv4 or [IPv6]; USER and "
      "PASS percent-encoded)";
  if (!text.starts_with("http://")) {
    *error = usage;
    return false;
  }
  std::string_view rest = text.substr(7);
  ProxyConfig proxy;
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    auto user = PercentDecode(userinfo.substr(0, colon));
    auto pass = PercentDecode(colon == std::string_view::npos ? std::string_view()
                                                              : userinfo.substr(colon + 1));
    if (!user || !pass || user->empty() || user->find(':') != std::string::npos) {
      *error = usage;
      return false;
    }
    // RFC 7617: base64 of "user:pass".
    std::string plain = *user + ":" + *pass;
    std::string encoded(4 * ((plain.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                  reinterpret_cast<const unsigned char*>(plain.data()),
                                  static_cast<int>(plain.size()));
    encoded.resize(static_cast<size_t>(n));
    proxy.authorization = "Basic " + encoded;
    OPENSSL_cleanse(plain.data(), plain.size());
    OPENSSL_cleanse(pass->data(), pass->size());
  }
  // The host:port part has exactly the shape of a gateway URL's authority with a port.
  const size_t bracket = rest.rfind(']');
  const bool has_port =
      rest.find(':', bracket == std::string_view::npos ? 0 : bracket) != std::string_view::npos;
  GatewayUrl url;
  std::string ignored;
  if (!has_port || !ParseGatewayUrl("http://" + std::string(rest), &url, &ignored)) {
    *error = usage;
    return false;
  }
  proxy.host = url.host;
  proxy.port = url.port;
  const bool v6 = proxy.host.find(':') != std::string::npos;
  proxy.text =
      "http://" + (v6 ? "[" + proxy.host + "]" : proxy.host) + ":" + std::to_string(proxy.port);
  *out = std::move(proxy);
  return true;
}

std::string BuildConnectRequest(const ProxyConfig& proxy, const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  const std::string authority = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  std::string request = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (!proxy.authorization.empty()) {
    request += "Proxy-Authorization: " + proxy.authorization + "\r\n";
  }
  return request + "\r\n";
}

}  // namespace camtunnel::agent
