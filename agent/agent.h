// The agent's top level: keeps one control session to the gateway alive (reconnect policy),
// and owns the tunnels the gateway asks for. Tunnels outlive a control session: losing the
// control connection does not cut live video.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "agent/backoff.h"
#include "agent/config.h"
#include "agent/control_session.h"
#include "agent/event_loop.h"
#include "agent/identity.h"
#include "agent/tunnel.h"

namespace camtunnel::agent {

// A camera has a few MB of RAM: each tunnel holds up to 2 x 64 KiB of relay buffers plus TLS
// state, so the number of simultaneous tunnels is bounded; beyond it OPEN gets EMFILE.
inline constexpr size_t kMaxTunnels = 16;
// A session that lasted this long was healthy: the next failure starts backing off afresh.
inline constexpr int64_t kHealthySessionMs = 60000;

struct AgentStats {
  uint64_t sessions_started = 0;
  uint64_t sessions_welcomed = 0;
  uint64_t bad_gateway_proofs = 0;
  uint64_t auth_rejections = 0;
  uint64_t tunnels_opened = 0;
  uint64_t open_failed = 0;
};

struct AgentOptions {
  BackoffPolicy backoff;
  SessionTimings session;
  TunnelTimings tunnel;
  uint64_t seed = 0;  // 0: from the CSPRNG
};

class Agent final : public ControlSession::Delegate {
 public:
  Agent(EventLoop& loop, const Config& config, std::unique_ptr<TransportFactory> factory,
        AgentOptions options = {});
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Connects at once; reconnects forever after that.
  void Start();
  // Closes the control session and resets every tunnel; nothing is scheduled afterwards.
  void Shutdown();

  const AgentStats& stats() const { return stats_; }

  // ControlSession::Delegate
  void OnWelcome(const Welcome& welcome) override;
  void OnOpen(proto::TunnelId tunnel, std::string_view service, const proto::Nonce& nonce) override;
  void OnSessionEnded(const SessionEnd& end) override;

 private:
  void Connect();
  int64_t ReconnectDelayMs(const SessionEnd& end);

  EventLoop& loop_;
  AgentIdentity identity_;
  GatewayTarget target_;
  std::unique_ptr<TransportFactory> factory_;
  AgentOptions options_;
  Backoff backoff_;
  AgentStats stats_;
  bool stopped_ = true;  // until Start()

  int64_t welcome_at_ms_ = -1;        // when this session's WELCOME arrived
  uint32_t reconnect_window_ms_ = 0;  // from the last WELCOME
  std::unique_ptr<ControlSession> session_;
  Timer reconnect_timer_;
  std::map<proto::TunnelId, std::unique_ptr<Tunnel>> tunnels_;
};

// Host header / dial target for a configured gateway URL.
GatewayTarget MakeGatewayTarget(const GatewayUrl& url);

}  // namespace camtunnel::agent
