// Query strings of the admin APIs and the operator console ("limit=5&cursor=cam-1"): split at
// '&' and '=', percent-decoded, bounded and strict. Strict because a query names agents, URLs
// and file paths: anything that could be read two ways is refused instead of guessed at.
//  - at most kMaxQueryBytes raw bytes and kMaxQueryParams pairs;
//  - raw bytes are RFC 3986 query characters only (unreserved, sub-delims, ':', '@', '/', '?',
//    and '%' escapes); '+' is a literal plus, not a space (that is HTML form encoding);
//  - every '%' starts two hex digits; a decoded value holds no control character (NUL included);
//  - no empty pair ("a=1&&b=2", a trailing '&') and no empty key; a pair without '=' has an
//    empty value.
// Pure: no I/O; the result owns its decoded strings.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace camtunnel::proto {

inline constexpr size_t kMaxQueryBytes = 2048;
inline constexpr size_t kMaxQueryParams = 32;

class QueryParams {
 public:
  // The parsed query, or nullopt with the reason in `error` (when given).
  static std::optional<QueryParams> Parse(std::string_view raw, std::string* error = nullptr);

  // The first value of `key`, decoded.
  std::optional<std::string_view> Get(std::string_view key) const;
  // Every pair in request order, duplicates included.
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
  bool empty() const { return pairs_.empty(); }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// Percent-decodes one component under the rules above; nullopt if it breaks them.
std::optional<std::string> PercentDecode(std::string_view raw);

}  // namespace camtunnel::proto
