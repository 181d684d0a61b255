// See http_bearer.h.
#include "proto/http_bearer.h"

#include "proto/crypto.h"
#include "proto/encoding.h"

namespace camtunnel::proto {

bool BearerTokenMatches(const HeaderList& headers, std::string_view token) {
  constexpr std::string_view kBearer = "Bearer ";
  if (token.empty() || headers.Count("Authorization") != 1) {
    return false;
  }
  const std::string_view value = *headers.Find("Authorization");
  if (!value.starts_with(kBearer)) {
    return false;
  }
  // Both sides hashed under one random key first: digests have one length, so neither the
  // comparison's time nor an early length mismatch tells how long the token is.
  static const Digest kKey = [] {
    Digest k;
    RandomBytes(k);
    return k;
  }();
  return ConstantTimeEqual(HmacSha256(kKey, AsBytes(value.substr(kBearer.size()))),
                           HmacSha256(kKey, AsBytes(token)));
}

}  // namespace camtunnel::proto
