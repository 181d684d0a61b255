#include "agentsim/streamer_key_file.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::agentsim {

absl::StatusOr<StreamerKey> LoadStreamerKey(const std::string& path, const std::string& key_id) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError("cannot read streamer keys file " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto key = ParseStreamerKey(ss.str(), key_id);
  if (!key.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(key.status().message()));
  }
  return key;
}

absl::StatusOr<StreamerKey> ParseStreamerKey(const std::string& text, const std::string& key_id) {
  int line_no = 0;
  bool any = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() != 2 || !proto::IsValidKeyId(parts[0])) {
      return absl::InvalidArgumentError("line " + std::to_string(line_no) +
                                        ": want '<key id> <64 hex chars>'");
    }
    auto key = proto::HexDecode(parts[1]);
    if (!key || key->size() != 32) {
      return absl::InvalidArgumentError("line " + std::to_string(line_no) +
                                        ": key must be 32 bytes (64 hex chars)");
    }
    any = true;
    if (key_id.empty() || parts[0] == key_id) {
      return StreamerKey{parts[0], std::move(*key)};
    }
  }
  if (!any) {
    return absl::InvalidArgumentError("no keys");
  }
  return absl::NotFoundError("no key with id '" + key_id + "'");
}

}  // namespace camtunnel::agentsim
