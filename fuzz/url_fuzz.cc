// Fuzzes the server URL grammar (proto/url.h) and the places that must agree on it. Checked:
// nothing crashes; an accepted URL has a valid host and re-formats to text that parses to the
// same URL; IsValidStreamerUrl is exactly ParseUrl with an http(s) scheme and the length cap; and
// every Streamer or manager URL the manager may hand out is one the agent can dial
// (agent::ParseGatewayUrl), with the same host and port.
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/config.h"
#include "fuzz/fuzz_check.h"
#include "proto/identifiers.h"
#include "proto/manager_link.h"
#include "proto/url.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace camtunnel;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<proto::Url> url = proto::ParseUrl(text);
  const bool http = url && (url->scheme == "https" || url->scheme == "http");
  FUZZ_CHECK(proto::IsValidStreamerUrl(text) == (http && size <= proto::kMaxStreamerUrl));
  if (!url) {
    return 0;
  }
  FUZZ_CHECK(proto::IsValidServiceHost(url->host));
  const std::string again =
      url->scheme + "://" + url->host + (url->port != 0 ? ":" + std::to_string(url->port) : "");
  FUZZ_CHECK(proto::ParseUrl(again) == url);
  FUZZ_CHECK(proto::ParseUrl(again + "/") == url);
  if (http) {
    agent::GatewayUrl dialed;
    std::string error;
    FUZZ_CHECK(agent::ParseGatewayUrl(text, &dialed, &error));
    FUZZ_CHECK(dialed.tls == (url->scheme == "https"));
    FUZZ_CHECK(dialed.host == proto::UnbracketedHost(*url));
    FUZZ_CHECK(dialed.port == (url->port != 0 ? url->port : dialed.tls ? 443 : 80));
  }
  return 0;
}
