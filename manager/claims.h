// Per-serial claim tokens (DESIGN "Agent lifecycle": "an operator claim step (operator id in
// firmware or a claim token) binds the camera to an operator"). An operator registers the serial
// and the token printed on the device label through the admin API; the activation that presents
// that token binds the camera to that operator, and a claimed serial accepts nothing else.
//
// Only HMAC-SHA256(random salt, token) is stored: a copy of the state file does not reveal the
// labels. (A label token is a random code, not a password: no slow hash needed, and activation
// attempts are rate-limited per source.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "manager/store_records.h"

namespace camtunnel::manager {

inline constexpr size_t kMinClaimToken = 8;
inline constexpr size_t kMaxClaimToken = 128;

// Printable ASCII without spaces, kMinClaimToken..kMaxClaimToken characters.
bool IsValidClaimToken(std::string_view token);

// A new claim with a fresh salt. The caller checked serial, operator id and token.
ClaimRecord MakeClaim(std::string_view serial, std::string_view operator_id, std::string_view token,
                      int64_t now_ms);

// Constant-time comparison of `token`'s salted hash with the claim's.
bool ClaimTokenMatches(const ClaimRecord& claim, std::string_view token);

}  // namespace camtunnel::manager
