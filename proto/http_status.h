// The one table of HTTP status codes and their reason phrases (RFC 9110 names), shared by every
// HTTP answer camtunnel writes. A code outside the table still gets a phrase that names its
// class, so an answer never carries a phrase that contradicts its code.
#pragma once

#include <string_view>

namespace camtunnel::proto {

// "Not Found" for 404; "Client Error" for an unlisted 4xx, "Server Error" for 5xx, and so on;
// "Unknown" outside 100..599.
std::string_view HttpReasonPhrase(int status);

}  // namespace camtunnel::proto
