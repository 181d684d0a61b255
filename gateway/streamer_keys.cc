#include "gateway/streamer_keys.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway {

absl::StatusOr<StreamerKeys> StreamerKeys::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError("cannot read streamer keys file " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto keys = Parse(ss.str());
  if (!keys.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(keys.status().message()));
  }
  return keys;
}

absl::StatusOr<StreamerKeys> StreamerKeys::Parse(const std::string& text) {
  StreamerKeys keys;
  int line_no = 0;
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
    keys.Add(parts[0], *key);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError("no keys");
  }
  return keys;
}

std::optional<proto::Digest> StreamerKeys::AgentKey(std::string_view agent_id,
                                                    const proto::KeyRef& ref) const {
  auto it = keys_.find(ref.key_id);
  if (it == keys_.end()) {
    return std::nullopt;
  }
  return proto::DeriveAgentKey(it->second, agent_id, ref);
}

}  // namespace camtunnel::gateway
