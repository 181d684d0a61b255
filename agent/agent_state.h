// What a managed agent remembers across restarts (DESIGN.md "Agent lifecycle"): its identity and
// secret from activation, its managers, the last command it acted on, the last Streamer it reached,
// and the last wall-clock time it knows to be good (a floor for certificate checks on cameras
// without a real-time clock). Written atomically (temp file + fsync + rename + fsync of the
// directory), so a power cut leaves either the old file or the new one, never half of one; mode
// 0600.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/manager_link.h"

namespace camtunnel::agent {

struct AgentState {
  std::string agent_id;
  std::string manager_url;
  proto::AgentSecret secret{};
  std::string last_streamer;  // may be empty
  int64_t last_good_unix_s = 0;
  // The last ASSIGN list, each entry a `streamer` field value sealed under the agent secret
  // (PROTOCOL.md section 10.3), so a restarted camera reaches its Streamers while its manager
  // is down, and the file holds no gateway key in clear.
  std::vector<std::vector<uint8_t>> sealed_streamers;
  // Every manager of the deployment (PROTOCOL.md section 10.5; empty: manager_url alone), and
  // the highest command id acted on (section 10.6: a command delivered again is not redone).
  std::vector<std::string> manager_urls;
  uint64_t last_command_id = 0;
};
inline constexpr size_t kMaxManagerUrls = 16;

// Missing file: nullopt with `*error` empty. Unreadable or invalid: nullopt with `*error` set
// (the caller treats it as "not activated" after logging; the secret is not guessed back).
std::optional<AgentState> LoadAgentState(const std::string& path, std::string* error);
bool SaveAgentState(const std::string& path, const AgentState& state, std::string* error);
// DEACTIVATE: overwrites the secret in place, then removes the file.
bool WipeAgentState(const std::string& path, std::string* error);

}  // namespace camtunnel::agent
