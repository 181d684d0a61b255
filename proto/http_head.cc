// Strict HTTP/1.x and RTSP/1.0 head parser (RFC 9110/9112 syntax, RFC 2326 start lines). It is
// the first code to see every untrusted byte on the frontend and agent listeners, so it accepts
// one spelling of each construct, never allocates, and never looks past kMaxHeadBytes.
//
// Lines are validated as soon as they are complete, so garbage is answered with 400 at once
// instead of waiting for a blank line that never comes. The result for a buffer therefore depends
// only on its first min(size, kMaxHeadBytes) bytes: every strict prefix of a complete head is
// kNeedMore, and bytes after the head never change the result.
#include "proto/http_head.h"

#include <algorithm>

namespace camtunnel::proto {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
bool IsTchar(char c) {
  if (IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTchar); }

// Visible ASCII only: a request-target is percent-encoded on the wire, so anything else is either
// an attack on a downstream parser or a broken client.
bool IsTargetChar(char c) { return c > 0x20 && c < 0x7f; }

// Field values and reason phrases: HTAB, SP, VCHAR and obs-text (bytes >= 0x80), no other
// control characters (NUL, CR, LF, DEL...).
bool IsValueChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return c == '\t' || (u >= 0x20 && u != 0x7f);
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Versions are case-sensitive (RFC 9112 section 2.3).
std::optional<Protocol> ParseVersion(std::string_view v) {
  if (v == "HTTP/1.1") {
    return Protocol::kHttp11;
  }
  if (v == "HTTP/1.0") {
    return Protocol::kHttp10;
  }
  if (v == "RTSP/1.0") {
    return Protocol::kRtsp10;
  }
  return std::nullopt;
}

enum class LineStatus { kLine, kNeedMore, kTooLarge, kMalformed };

// Hands out CRLF-terminated lines from the first kMaxHeadBytes of a buffer.
class LineScanner {
 public:
  explicit LineScanner(std::string_view buf) : buf_(buf) {}

  LineStatus Next(std::string_view* line) {
    const size_t limit = std::min(buf_.size(), kMaxHeadBytes);
    for (size_t i = pos_; i < limit; ++i) {
      if (buf_[i] == '\n') {
        return LineStatus::kMalformed;  // a bare LF: CR LF pairs are consumed below
      }
      if (buf_[i] == '\r') {
        if (i + 1 == limit) {
          break;  // the LF has not arrived, or would lie past the limit
        }
        if (buf_[i + 1] != '\n') {
          return LineStatus::kMalformed;  // a bare CR
        }
        *line = buf_.substr(pos_, i - pos_);
        pos_ = i + 2;
        return LineStatus::kLine;
      }
    }
    return buf_.size() >= kMaxHeadBytes ? LineStatus::kTooLarge : LineStatus::kNeedMore;
  }

  size_t consumed() const { return pos_; }

 private:
  std::string_view buf_;
  size_t pos_ = 0;
};

HeadResult FromLineStatus(LineStatus s) {
  switch (s) {
    case LineStatus::kNeedMore:
      return HeadResult::kNeedMore;
    case LineStatus::kTooLarge:
      return HeadResult::kTooLarge;
    case LineStatus::kLine:
    case LineStatus::kMalformed:
      break;
  }
  return HeadResult::kMalformed;
}

// field-line = field-name ":" OWS field-value OWS. No whitespace before the colon (RFC 9112
// section 5.1 requires rejecting it) and none at the start of the line (obsolete folding): both
// fail the token check on the name.
bool ParseFieldLine(std::string_view line, HeaderField* out) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  std::string_view name = line.substr(0, colon);
  std::string_view value = TrimOws(line.substr(colon + 1));
  if (!IsToken(name) || !std::all_of(value.begin(), value.end(), IsValueChar)) {
    return false;
  }
  *out = HeaderField{name, value};
  return true;
}

// request-line = method SP request-target SP version, single spaces.
bool ParseRequestLine(std::string_view line, RequestHead* out) {
  const size_t method_end = line.find(' ');
  if (method_end == std::string_view::npos) {
    return false;
  }
  const size_t target_end = line.find(' ', method_end + 1);
  if (target_end == std::string_view::npos) {
    return false;
  }
  std::string_view method = line.substr(0, method_end);
  std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
  auto protocol = ParseVersion(line.substr(target_end + 1));
  if (!IsToken(method) || target.empty() ||
      !std::all_of(target.begin(), target.end(), IsTargetChar) || !protocol) {
    return false;
  }
  out->method = method;
  out->target = target;
  out->protocol = *protocol;
  return true;
}

// status-line = version SP 3DIGIT SP [reason]. A missing SP after the code is accepted too:
// the reason is meaningless (RFC 9112 section 4) and some camera firmware omits it.
bool ParseStatusLine(std::string_view line, ResponseHead* out) {
  if (line.size() < 12 || line[8] != ' ') {
    return false;
  }
  auto protocol = ParseVersion(line.substr(0, 8));
  if (!protocol || line[9] < '1' || line[9] > '9' || !IsDigit(line[10]) || !IsDigit(line[11])) {
    return false;
  }
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') {
      return false;
    }
    reason = line.substr(13);
    if (!std::all_of(reason.begin(), reason.end(), IsValueChar)) {
      return false;
    }
  }
  out->protocol = *protocol;
  out->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  out->reason = reason;
  return true;
}

template <typename Head, typename StartLineParser>
HeadResult ParseHead(std::string_view buf, Head* out, StartLineParser parse_start_line) {
  out->headers.count = 0;
  out->head_bytes = 0;
  LineScanner scanner(buf);
  std::string_view line;
  LineStatus status = scanner.Next(&line);
  if (status != LineStatus::kLine) {
    return FromLineStatus(status);
  }
  if (!parse_start_line(line, out)) {
    return HeadResult::kMalformed;
  }
  for (;;) {
    status = scanner.Next(&line);
    if (status != LineStatus::kLine) {
      return FromLineStatus(status);
    }
    if (line.empty()) {
      out->head_bytes = scanner.consumed();
      return HeadResult::kComplete;
    }
    if (out->headers.count == kMaxHeaders) {
      return HeadResult::kTooManyHeaders;
    }
    if (!ParseFieldLine(line, &out->headers.fields[out->headers.count])) {
      return HeadResult::kMalformed;
    }
    ++out->headers.count;
  }
}

}  // namespace

std::string_view HeadResultName(HeadResult r) {
  switch (r) {
    case HeadResult::kComplete:
      return "complete";
    case HeadResult::kNeedMore:
      return "need-more";
    case HeadResult::kTooLarge:
      return "too-large";
    case HeadResult::kTooManyHeaders:
      return "too-many-headers";
    case HeadResult::kMalformed:
      return "malformed";
  }
  return "unknown";
}

std::optional<std::string_view> HeaderList::Find(std::string_view name) const {
  for (size_t i = 0; i < count; ++i) {
    if (EqualsIgnoreCase(fields[i].name, name)) {
      return fields[i].value;
    }
  }
  return std::nullopt;
}

size_t HeaderList::Count(std::string_view name) const {
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    if (EqualsIgnoreCase(fields[i].name, name)) {
      ++n;
    }
  }
  return n;
}

HeadResult ParseRequestHead(std::string_view buf, RequestHead* out) {
  return ParseHead(buf, out, ParseRequestLine);
}

HeadResult ParseResponseHead(std::string_view buf, ResponseHead* out) {
  return ParseHead(buf, out, ParseStatusLine);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) {
      return false;
    }
  }
  return true;
}

bool HeaderHasToken(std::string_view value, std::string_view token) {
  if (token.empty()) {
    return false;
  }
  while (true) {
    const size_t comma = value.find(',');
    if (EqualsIgnoreCase(TrimOws(value.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      return false;
    }
    value.remove_prefix(comma + 1);
  }
}

std::optional<uint64_t> ParseContentLength(std::string_view value) {
  // 18 digits keep the value below 10^18 < 2^63: no overflow check needed, and no body is larger.
  if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), IsDigit)) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (char c : value) {
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

}  // namespace camtunnel::proto
