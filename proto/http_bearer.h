// The one bearer-token check of camtunnel's HTTP APIs (gateway and manager admin): the request's
// single Authorization field must be "Bearer <token>", compared in constant time so the answer's
// timing reveals neither how much of a guess was right nor the token's length.
#pragma once

#include <string_view>

#include "proto/http_head.h"

namespace camtunnel::proto {

// False for an empty `token` (no token configured is the caller's decision, not a match).
bool BearerTokenMatches(const HeaderList& headers, std::string_view token);

}  // namespace camtunnel::proto
