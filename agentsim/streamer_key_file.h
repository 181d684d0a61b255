// Reads the gateway's streamer keys file (proto/streamer_key_file.h: the gateway's own parser)
// and picks the key every simulated agent derives its own K from (PROTOCOL.md section 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace camtunnel::agentsim {

struct StreamerKey {
  std::string key_id;
  std::vector<uint8_t> key;  // 32 bytes
};

// The key named `key_id`, or the file's first key when `key_id` is empty.
absl::StatusOr<StreamerKey> LoadStreamerKey(const std::string& path, const std::string& key_id);
absl::StatusOr<StreamerKey> ParseStreamerKey(const std::string& text, const std::string& key_id);

}  // namespace camtunnel::agentsim
