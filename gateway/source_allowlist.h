// The frontend's source allowlist: CIDR prefixes ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")
// a media server's address must fall in. IPv4-mapped IPv6 peers ("::ffff:10.1.2.3", what a dual
// stack [::] listener reports) are matched as the IPv4 address they carry.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace camtunnel::gateway {

class SourceAllowlist {
 public:
  // Every entry must parse; the error names the first that does not.
  static absl::StatusOr<SourceAllowlist> Parse(const std::vector<std::string>& cidrs);

  // An empty list allows everyone (the loopback-only default).
  bool empty() const { return entries_.empty(); }
  bool Allows(const sockaddr_storage& peer) const;

 private:
  struct Entry {
    bool v4 = false;
    std::array<uint8_t, 16> address{};  // v4 in the first 4 bytes
    uint8_t prefix = 0;
  };
  std::vector<Entry> entries_;
};

}  // namespace camtunnel::gateway
