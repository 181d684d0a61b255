#include "gateway/streamer_keys.h"

#include "absl/status/status.h"
#include "proto/streamer_key_file.h"
#include "runtime/read_file.h"

namespace camtunnel::gateway {

absl::StatusOr<StreamerKeys> StreamerKeys::Load(const std::string& path) {
  auto text = runtime::ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError("cannot read streamer keys file " + path);
  }
  auto keys = Parse(*text);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(keys.status().message()));
  }
  return keys;
}

absl::StatusOr<StreamerKeys> StreamerKeys::Parse(const std::string& text) {
  std::string error;
  auto entries = proto::ParseStreamerKeys(text, &error);
  if (!entries) {
    return absl::InvalidArgumentError(error);
  }
  StreamerKeys keys;
  for (const proto::StreamerKeyEntry& e : *entries) {
    keys.Add(e.key_id, e.key);
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
