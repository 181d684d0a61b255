// Where a manager or gateway URL of managed mode points ("https://host[:port]" or
// "http://host[:port]", PROTOCOL.md section 10), in the form a simulated agent dials: the
// address, the Host header, the TLS name and whether to speak TLS. URLs come from the command
// line, the activation answer and ASSIGN; each is resolved once and kept for the run.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace camtunnel::agentsim {

struct UrlEndpoint {
  std::string url;
  sockaddr_storage address{};
  std::string host;         // host[:port] as the URL writes it: the Host header
  std::string server_name;  // SNI and certificate name; empty for an address literal
  bool tls = true;          // https
};

// The URL's endpoint; a host name is resolved here (a blocking lookup).
absl::StatusOr<UrlEndpoint> ParseUrlEndpoint(std::string_view url);

class UrlEndpoints {
 public:
  // The endpoint of `url`, parsed and resolved on its first use. The pointer stays valid for
  // the life of this object (agents keep it).
  absl::StatusOr<const UrlEndpoint*> Find(std::string_view url);

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<UrlEndpoint>> endpoints_;
};

}  // namespace camtunnel::agentsim
