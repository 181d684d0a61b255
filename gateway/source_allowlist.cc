#include "gateway/source_allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/numbers.h"

namespace camtunnel::gateway {
namespace {

bool PrefixMatches(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  const unsigned bytes = prefix / 8;
  if (std::memcmp(a, b, bytes) != 0) {
    return false;
  }
  const unsigned bits = prefix % 8;
  if (bits == 0) {
    return true;
  }
  const auto mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

absl::StatusOr<SourceAllowlist> SourceAllowlist::Parse(const std::vector<std::string>& cidrs) {
  SourceAllowlist list;
  for (const std::string& text : cidrs) {
    const size_t slash = text.find('/');
    const std::string host = text.substr(0, slash);
    Entry e;
    unsigned max_prefix = 0;
    if (inet_pton(AF_INET, host.c_str(), e.address.data()) == 1) {
      e.v4 = true;
      max_prefix = 32;
    } else if (inet_pton(AF_INET6, host.c_str(), e.address.data()) == 1) {
      max_prefix = 128;
    } else {
      return absl::InvalidArgumentError("frontend_allow: '" + text +
                                        "' is not an address or CIDR (10.0.0.0/8, 2001:db8::/32)");
    }
    unsigned prefix = max_prefix;
    if (slash != std::string::npos &&
        (!absl::SimpleAtoi(text.substr(slash + 1), &prefix) || prefix > max_prefix)) {
      return absl::InvalidArgumentError("frontend_allow: bad prefix length in '" + text + "'");
    }
    e.prefix = static_cast<uint8_t>(prefix);
    list.entries_.push_back(e);
  }
  return list;
}

bool SourceAllowlist::Allows(const sockaddr_storage& peer) const {
  if (entries_.empty()) {
    return true;
  }
  const uint8_t* v4 = nullptr;
  const uint8_t* v6 = nullptr;
  if (peer.ss_family == AF_INET) {
    v4 = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr);
  } else if (peer.ss_family == AF_INET6) {
    const auto* a = &reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr;
    v6 = reinterpret_cast<const uint8_t*>(a);
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      v4 = v6 + 12;
    }
  } else {
    return false;  // not an IP peer: never on the frontend's listeners
  }
  for (const Entry& e : entries_) {
    if (e.v4 ? (v4 != nullptr && PrefixMatches(v4, e.address.data(), e.prefix))
             : (v6 != nullptr && PrefixMatches(v6, e.address.data(), e.prefix))) {
      return true;
    }
  }
  return false;
}

}  // namespace camtunnel::gateway
