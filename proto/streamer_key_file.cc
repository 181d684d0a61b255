// See streamer_key_file.h.
#include "proto/streamer_key_file.h"

#include <algorithm>

#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::proto {
namespace {

constexpr std::string_view kWhitespace = " \t\r\n\f\v";

std::string_view Strip(std::string_view s) {
  const size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) {
    return {};
  }
  return s.substr(begin, s.find_last_not_of(kWhitespace) - begin + 1);
}

// The words of a line separated by runs of spaces.
std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    const size_t end = std::min(line.find(' ', i), line.size());
    if (end > i) {
      words.push_back(line.substr(i, end - i));
    }
    i = end + 1;
  }
  return words;
}

}  // namespace

std::optional<std::vector<StreamerKeyEntry>> ParseStreamerKeys(std::string_view text,
                                                               std::string* error) {
  std::vector<StreamerKeyEntry> keys;
  size_t start = 0;
  for (int line_no = 1; start <= text.size(); ++line_no) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = Strip(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const std::vector<std::string_view> parts = Words(line);
    if (parts.size() != 2 || !IsValidKeyId(parts[0])) {
      *error = "line " + std::to_string(line_no) + ": want '<key id> <64 hex chars>'";
      return std::nullopt;
    }
    std::optional<std::vector<uint8_t>> key = HexDecode(parts[1]);
    if (!key || key->size() != 32) {
      *error = "line " + std::to_string(line_no) + ": key must be 32 bytes (64 hex chars)";
      return std::nullopt;
    }
    keys.push_back({std::string(parts[0]), std::move(*key)});
  }
  if (keys.empty()) {
    *error = "no keys";
    return std::nullopt;
  }
  return keys;
}

}  // namespace camtunnel::proto
