// See claims.h.
#include "manager/claims.h"

#include "proto/crypto.h"
#include "proto/encoding.h"

namespace camtunnel::manager {
namespace {

proto::Digest TokenHash(std::span<const uint8_t> salt, std::string_view token) {
  return proto::HmacSha256(salt, proto::AsBytes(token));
}

}  // namespace

bool IsValidClaimToken(std::string_view token) {
  if (token.size() < kMinClaimToken || token.size() > kMaxClaimToken) {
    return false;
  }
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

ClaimRecord MakeClaim(std::string_view serial, std::string_view operator_id, std::string_view token,
                      int64_t now_ms) {
  ClaimRecord c{.serial = std::string(serial),
                .operator_id = std::string(operator_id),
                .created_at_ms = now_ms};
  proto::RandomBytes(c.token_salt);
  c.token_hash = TokenHash(c.token_salt, token);
  return c;
}

bool ClaimTokenMatches(const ClaimRecord& claim, std::string_view token) {
  const proto::Digest h = TokenHash(claim.token_salt, token);
  return proto::ConstantTimeEqual(h, claim.token_hash);
}

}  // namespace camtunnel::manager
