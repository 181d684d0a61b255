#include "agentsim/streamer_key_file.h"

#include "absl/status/status.h"
#include "proto/streamer_key_file.h"
#include "runtime/read_file.h"

namespace camtunnel::agentsim {

absl::StatusOr<StreamerKey> LoadStreamerKey(const std::string& path, const std::string& key_id) {
  auto text = runtime::ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError("cannot read streamer keys file " + path);
  }
  auto key = ParseStreamerKey(*text, key_id);
  if (!key.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(key.status().message()));
  }
  return key;
}

absl::StatusOr<StreamerKey> ParseStreamerKey(const std::string& text, const std::string& key_id) {
  std::string error;
  auto keys = proto::ParseStreamerKeys(text, &error);
  if (!keys) {
    return absl::InvalidArgumentError(error);
  }
  for (proto::StreamerKeyEntry& k : *keys) {
    if (key_id.empty() || k.key_id == key_id) {
      return StreamerKey{std::move(k.key_id), std::move(k.key)};
    }
  }
  return absl::NotFoundError("no key with id '" + key_id + "'");
}

}  // namespace camtunnel::agentsim
