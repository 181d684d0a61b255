// The gateway's streamer keys, by key id (current and previous at least, for rotation). A
// gateway derives any agent's key from them, so it needs no per-agent state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "proto/crypto.h"

namespace camtunnel::gateway {

class StreamerKeys {
 public:
  // File format: one key per line, "<key id> <64 hex chars>"; '#' starts a comment.
  static absl::StatusOr<StreamerKeys> Load(const std::string& path);
  static absl::StatusOr<StreamerKeys> Parse(const std::string& text);

  void Add(const std::string& key_id, const std::vector<uint8_t>& key) {
    if (first_key_id_.empty()) {
      first_key_id_ = key_id;
    }
    keys_[key_id] = key;
  }
  // The file's first key: the current one by convention (derive-key uses it by default).
  const std::string& first_key_id() const { return first_key_id_; }
  // K for the agent, or nullopt when the key id is unknown.
  std::optional<proto::Digest> AgentKey(std::string_view agent_id, const proto::KeyRef& ref) const;
  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }

 private:
  absl::flat_hash_map<std::string, std::vector<uint8_t>> keys_;
  std::string first_key_id_;
};

}  // namespace camtunnel::gateway
