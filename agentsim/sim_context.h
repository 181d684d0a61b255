// What every simulated agent, camera and media session shares: the options, the shard they all
// run on, the TLS client context, the counters and the snapshot body. One per process.
// TODO: one shard (one thread) for now; several shards would each get their own context, with
// the agents split between them by index, and the counters summed for reports.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>
#include <random>

#include "agentsim/agent_identity.h"
#include "agentsim/options.h"
#include "agentsim/sim_stats.h"
#include "agentsim/snapshot_image.h"
#include "agentsim/tls_sessions.h"
#include "runtime/shard.h"
#include "runtime/stream.h"

namespace camtunnel::agentsim {

struct SimContext {
  const Options& options;
  runtime::Shard& shard;
  SSL_CTX* tls_ctx = nullptr;  // null in plain mode (managed mode: null without --ca)
  SimStats& stats;
  const SnapshotImage& snapshot;
  TlsSessions* tls_sessions = nullptr;  // null in plain mode and with --notls_resume
  std::mt19937_64 rng{std::random_device{}()};
  // Set when the run ends: nothing reconnects or starts any more.
  bool stopping = false;
  // Managed mode: the manager's client context, and the URLs agents were given.
  SSL_CTX* manager_tls_ctx = nullptr;
  UrlEndpoints* endpoints = nullptr;

  // Where agent `a` connects to its gateway (control and data connections): its assigned
  // gateway in managed mode, --gateway_agent otherwise.
  const sockaddr_storage& GatewayAddress(const AgentIdentity& a) const {
    return a.gateway != nullptr ? a.gateway->address : options.gateway_agent;
  }
  SSL_CTX* GatewayTls(const AgentIdentity& a) const {
    return a.gateway != nullptr && !a.gateway->tls ? nullptr : tls_ctx;
  }
  const std::string& GatewayServerName(const AgentIdentity& a) const {
    return a.gateway != nullptr ? a.gateway->server_name : options.server_name;
  }
  // The upgrade's Host header.
  const std::string& GatewayHost(const AgentIdentity& a) const {
    if (a.gateway != nullptr) {
      return a.gateway->host;
    }
    return options.server_name.empty() ? options.gateway_agent_text : options.server_name;
  }

  // The source address for connection `index` (agents spread over --sources), if any.
  std::optional<sockaddr_storage> Source(uint64_t index) const {
    if (options.sources.empty()) {
      return std::nullopt;
    }
    return options.sources[index % options.sources.size()];
  }
  // Uniform in [0, n); 0 when n is 0.
  uint64_t Random(uint64_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
  }
};

// On a client connection's first answer bytes (the gateway's ticket comes before them): counts
// its handshake as full or resumed and keeps its session for the agent's next connection.
inline void KeepTlsSession(SimContext& ctx, uint32_t agent_index, const runtime::Stream& stream) {
  if (!stream.tls()) {
    return;
  }
  ++ctx.stats.agents.tls_handshakes[stream.tls_resumed() ? "resumed" : "full"];
  if (ctx.tls_sessions != nullptr) {
    ctx.tls_sessions->Keep(agent_index, stream.ResumableSession());
  }
}

}  // namespace camtunnel::agentsim
