// The gateway's configuration: listeners, TLS files, keys, deadlines and limits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace camtunnel::gateway {

struct GatewayConfig {
  // Agent-facing listeners. TLS when cert_file is set; plain otherwise.
  std::vector<std::string> agent_tls_listen;    // e.g. "0.0.0.0:443"
  std::vector<std::string> agent_plain_listen;  // e.g. "0.0.0.0:80"
  std::string cert_file;
  std::string key_file;
  // With a certificate configured, agents on the plain listener are refused (403) unless this
  // is set: an attacker on the path must not be able to downgrade an agent to plain.
  bool allow_plain_with_tls = false;
  // Where the kernel has kTLS (probed at start-up), it encrypts what the gateway sends on TLS
  // connections once their handshake is done (runtime/kernel_tls_send.h); false keeps all of
  // TLS in OpenSSL.
  bool kernel_tls = true;
  std::string streamer_keys_file;  // lines "<key id> <64 hex chars>"
  // Session ticket keys (runtime/ticket_keys.h), shared by every shard and kept across
  // restarts so a reconnecting fleet resumes its TLS sessions; created (0600) when missing.
  // Empty: keys made at start-up, valid until the process ends.
  std::string ticket_keys_file;

  std::vector<std::string> frontend_listen = {"127.0.0.1:8554", "[::1]:8554"};
  // Source CIDRs allowed on the frontend (empty: anyone who can connect). Required when a
  // frontend listener is bound beyond loopback (config_check.h says what loopback means).
  std::vector<std::string> frontend_allow;
  // Bearer token that HTTP and CONNECT requests must carry in Proxy-Authorization (RTSP
  // clients cannot send one). Required beyond loopback; read from frontend_token_file.
  std::string frontend_token_file;
  std::string frontend_token;
  std::string host_suffix = "localhost";  // <agent>.<suffix> names an agent in host form
  std::vector<std::string> admin_listen = {"127.0.0.1:9310"};
  // Bearer token for the admin API. Required (the gateway refuses to start without it) when an
  // admin listener is bound beyond loopback; when set, every admin request must carry it,
  // except /healthz and /readyz, which load balancers probe without credentials.
  std::string admin_token_file;
  std::string admin_token;

  // Deadlines (milliseconds).
  uint64_t handshake_timeout_ms = 5000;  // TCP accept to verified HELLO
  uint64_t head_timeout_ms = 5000;       // first request head on the frontend
  uint64_t open_timeout_ms = 5000;       // OPEN to data connection
  uint32_t heartbeat_ms = 5000;          // announced in WELCOME
  uint32_t heartbeat_misses = 2;         // silent intervals before a session is dead
  uint32_t reconnect_window_ms = 10000;  // announced in WELCOME
  uint64_t drain_timeout_ms = 25000;     // drain: open tunnels may finish until this deadline
  uint32_t drain_reconnect_ms = 1000;    // drain: GOAWAY's "reconnect after" hint to agents

  // Handshake pacing (per shard): new agent connections admitted per second before any TLS
  // work; the rest wait in the kernel's backlog. 0 = unpaced. Burst 0 = a tenth of the rate.
  uint32_t agent_handshakes_per_second = 2000;
  uint32_t agent_handshake_burst = 0;

  // Upgrade without dropping cameras (docs/operations.md): the new process joins the running
  // one's SO_REUSEPORT listeners instead of refusing ports in use, and for takeover_window_ms
  // after it starts, a media request for an agent not connected yet waits up to
  // takeover_hold_ms for it (the old process's drain sends agents over).
  bool takeover = false;
  uint64_t takeover_hold_ms = 15000;
  uint64_t takeover_window_ms = 120000;

  // Shards (threads, each with its own ring and listeners); 0 = one per online CPU.
  uint32_t shards = 0;

  // Spare data connections (PROTOCOL.md 8.1) per agent that opened a tunnel within
  // spare_idle_ms; 0 turns them off. An agent whose opens outrun its spares (an open finds
  // none while one is on its way) gets one more, up to spare_data_connections_max, and one
  // less for each that goes unused for spare_idle_ms, after which it closes.
  uint32_t spare_data_connections = 1;
  uint32_t spare_data_connections_max = 4;
  uint64_t spare_idle_ms = 60000;

  // Limits.
  uint32_t max_pending_tunnels_per_agent = 32;
  uint32_t max_unauthenticated = 4096;  // agent connections before HELLO verifies
  uint32_t max_connections = 50000;     // all connections of the shard

  std::string log_level = "info";  // debug, info, warning, error
  // Lines per cause (event) per 10 s window before further lines of that cause are only counted.
  uint32_t log_burst = 20;
};

}  // namespace camtunnel::gateway
