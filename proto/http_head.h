// Strict, bounded parser for HTTP/1.x and RTSP/1.0 message heads (request and response).
// Bounds: a head is at most 8 KiB including the blank line and has at most 64 header fields.
// The parser does not allocate: results are views into the caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace camtunnel::proto {

inline constexpr size_t kMaxHeadBytes = 8192;
inline constexpr size_t kMaxHeaders = 64;

enum class HeadResult {
  kComplete,        // head parsed; head_bytes says how long it was
  kNeedMore,        // no complete head yet, and still within limits
  kTooLarge,        // no end of head within kMaxHeadBytes (answer 431)
  kTooManyHeaders,  // more than kMaxHeaders (answer 431)
  kMalformed,       // syntax error (answer 400)
};
std::string_view HeadResultName(HeadResult r);

enum class Protocol { kHttp10, kHttp11, kRtsp10 };

struct HeaderField {
  std::string_view name;
  std::string_view value;  // leading/trailing whitespace trimmed
};

struct HeaderList {
  HeaderField fields[kMaxHeaders];
  size_t count = 0;
  // Case-insensitive lookup of the first field with this name.
  std::optional<std::string_view> Find(std::string_view name) const;
  size_t Count(std::string_view name) const;
};

struct RequestHead {
  std::string_view method;  // token
  std::string_view target;  // request-target, no whitespace or control characters
  Protocol protocol = Protocol::kHttp11;
  HeaderList headers;
  size_t head_bytes = 0;  // including the final CRLF CRLF
};

struct ResponseHead {
  Protocol protocol = Protocol::kHttp11;
  int status = 0;  // 100..999
  std::string_view reason;
  HeaderList headers;
  size_t head_bytes = 0;
};

// Lines end in CRLF (a bare LF is malformed); no obsolete line folding; header names are tokens;
// values have no control characters other than HTAB.
HeadResult ParseRequestHead(std::string_view buf, RequestHead* out);
HeadResult ParseResponseHead(std::string_view buf, ResponseHead* out);

// Case-insensitive ASCII comparison, and "does this comma-separated header list contain token".
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool HeaderHasToken(std::string_view value, std::string_view token);
// Parses a decimal Content-Length (no sign, no leading '+', at most 18 digits).
std::optional<uint64_t> ParseContentLength(std::string_view value);

}  // namespace camtunnel::proto
