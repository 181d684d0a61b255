// HTTP/1.1 answers of the manager's listeners (activation, upgrade refusals, admin API): always
// Content-Length and Connection: close, because every manager HTTP exchange is one request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace camtunnel::manager {

std::string HttpAnswer(int status, std::string_view content_type, std::string_view body,
                       int64_t retry_after_ms = -1);
// "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1": the rate limit is per address, not per port.
std::string_view SourceAddress(std::string_view peer_text);

}  // namespace camtunnel::manager
