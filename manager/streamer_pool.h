// The Streamers (gateways) this manager assigns agents to, each with its streamer key, its
// health (from the gateway's /readyz) and its load (active agents assigned to it), and the
// assignment rule: healthy Streamers by increasing load, then the unhealthy ones as a last
// resort (an agent with a list can still fail over while the manager is unreachable).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {

struct StreamerConfig {
  std::string url;  // what agents dial: https://host[:port] or http://host[:port]
  std::string key_id;
  std::vector<uint8_t> streamer_key;  // 32 bytes
  std::string admin_url;              // http://host:port of its admin API; empty: no checks
  std::string admin_token;            // bearer token for that API (when not on loopback)
  // Where media servers reach this gateway's frontend ("rtsp://host:port"): handed to the
  // Streamer an agent left, so it redirects requests for that agent here. Empty: unknown.
  std::string frontend_url;
};

// "URL,KEYID,KEYFILE[,ADMIN_URL[,TOKEN_FILE]]" (one line of the --streamers file, fields joined).
// KEYFILE is the gateway's keys file ("<key id> <64 hex>" lines); the line for KEYID is used.
// After the first three fields, "frontend=rtsp://host:port" may appear (it is not counted among
// the positional ones), so older files keep their meaning.
absl::StatusOr<StreamerConfig> ParseStreamerSpec(std::string_view spec);

class StreamerPool {
 public:
  // Derived keys are valid for `key_validity_s`, with the expiry rounded up to a whole hour (or
  // to the validity, if shorter) so agents that connect within the same hour share key
  // references (fewer distinct values in gateway logs, nothing secret about it).
  StreamerPool(std::vector<StreamerConfig> streamers, uint64_t key_validity_s);

  // A new list (SIGHUP): a Streamer that stays (same URL) keeps its health, a new one starts
  // healthy. Indexes change: whoever keeps per-Streamer state rebuilds it.
  void Replace(std::vector<StreamerConfig> streamers);

  size_t size() const { return streamers_.size(); }
  const StreamerConfig& config(size_t i) const { return streamers_[i]; }
  // The index of the Streamer agents dial at `url`, or nullopt.
  std::optional<size_t> Find(std::string_view url) const;
  bool healthy(size_t i) const { return healthy_[i]; }
  bool any_healthy() const;
  void SetHealthy(size_t i, bool healthy) { healthy_[i] = healthy; }
  uint64_t key_validity_s() const { return key_validity_s_; }

  using LoadFn = std::function<size_t(std::string_view url)>;
  // The ordered ASSIGN list for `agent_id`; `preferred` (a URL) goes first when it is healthy
  // (the operator's "move"), otherwise the least-loaded healthy Streamer does.
  std::vector<proto::AssignedStreamer> Assign(std::string_view agent_id, uint64_t now_unix_s,
                                              const LoadFn& load,
                                              std::string_view preferred = {}) const;

 private:
  std::vector<StreamerConfig> streamers_;
  std::vector<bool> healthy_;
  uint64_t key_validity_s_;
};

}  // namespace camtunnel::manager
