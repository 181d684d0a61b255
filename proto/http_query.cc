// See http_query.h.
#include "proto/http_query.h"

namespace camtunnel::proto {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// RFC 3986 "query" characters other than '%' (checked with its digits) and the two delimiters
// '&' and '=', which the caller has already split at.
bool IsQueryChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case ':':
    case '@':
    case '/':
    case '?':
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) {
        return std::nullopt;
      }
      const int hi = HexValue(raw[i + 1]);
      const int lo = HexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      const auto byte = static_cast<unsigned char>(hi * 16 + lo);
      if (byte < 0x20 || byte == 0x7f) {
        return std::nullopt;  // a control character, NUL included, is never data here
      }
      out.push_back(static_cast<char>(byte));
      i += 2;
    } else if (IsQueryChar(c)) {
      out.push_back(c);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::optional<QueryParams> QueryParams::Parse(std::string_view raw, std::string* error) {
  auto fail = [error](std::string_view why) -> std::optional<QueryParams> {
    if (error != nullptr) {
      *error = std::string(why);
    }
    return std::nullopt;
  };
  if (raw.size() > kMaxQueryBytes) {
    return fail("query string too long");
  }
  QueryParams params;
  while (!raw.empty()) {
    const size_t amp = raw.find('&');
    const std::string_view pair = raw.substr(0, amp);
    if (amp != std::string_view::npos && amp + 1 == raw.size()) {
      return fail("empty query parameter");  // a trailing '&'
    }
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (pair.empty()) {
      return fail("empty query parameter");
    }
    if (params.pairs_.size() == kMaxQueryParams) {
      return fail("too many query parameters");
    }
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (key.empty()) {
      return fail("empty query parameter name");
    }
    if (value.find('=') != std::string_view::npos) {
      return fail("'=' in a query value must be escaped as %3D");
    }
    std::optional<std::string> k = PercentDecode(key);
    std::optional<std::string> v = PercentDecode(value);
    if (!k || !v) {
      return fail("bad character or escape in the query string");
    }
    params.pairs_.emplace_back(std::move(*k), std::move(*v));
  }
  return params;
}

std::optional<std::string_view> QueryParams::Get(std::string_view key) const {
  for (const auto& [k, v] : pairs_) {
    if (k == key) {
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace camtunnel::proto
