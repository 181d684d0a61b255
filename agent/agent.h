// The agent's top level: keeps one control session to a gateway alive (reconnect policy and
// failover down the list of Streamers), and owns the tunnels the gateway asks for. Tunnels
// outlive a control session: losing the control connection, or switching to another Streamer,
// does not cut live video (each tunnel keeps the route it was opened on alive).
//
// Two ways to get Streamers: one from the static configuration (--gateway/--key_file), or an
// ordered list from the manager's ASSIGN (SetStreamers), with SWITCH (SwitchTo).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/backoff.h"
#include "agent/config.h"
#include "agent/control_session.h"
#include "agent/event_loop.h"
#include "agent/identity.h"
#include "agent/spare_connection.h"
#include "agent/tunnel.h"
#include "proto/manager_link.h"

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
  uint64_t failovers = 0;  // moved to the next Streamer of the list after a failure
};

struct AgentOptions {
  BackoffPolicy backoff;
  SessionTimings session;
  TunnelTimings tunnel;
  uint64_t seed = 0;  // 0: from the CSPRNG
  // --proxy: every connection to a gateway (and, in managed mode, to the manager and the
  // activation server) goes through it. Null: direct.
  std::shared_ptr<const ProxyConfig> proxy;
};

// One Streamer the agent can use: where it is, how to reach it, and the key it proves itself
// with there. Shared with the tunnels opened through it.
struct Route {
  GatewayTarget target;
  std::unique_ptr<TransportFactory> factory;
  AgentIdentity identity;
};

class Agent final : public ControlSession::Delegate {
 public:
  // Makes the transport factory for a Streamer URL (TLS trust per host name); null on error.
  using FactoryMaker = std::function<std::unique_ptr<TransportFactory>(const GatewayUrl& url)>;
  // Connected (true) to, or lost (false), the Streamer at `url`.
  using LinkObserver = std::function<void(const std::string& url, bool connected)>;

  // Static mode: one Streamer from the configuration.
  Agent(EventLoop& loop, const Config& config, std::unique_ptr<TransportFactory> factory,
        AgentOptions options = {});
  // Managed mode: no Streamer until SetStreamers().
  Agent(EventLoop& loop, std::string agent_id, std::vector<proto::ServiceEntry> services,
        FactoryMaker make_factory, AgentOptions options = {});
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Connects at once; reconnects forever after that.
  void Start();
  // Closes the control session and resets every tunnel; nothing is scheduled afterwards.
  void Shutdown();

  const AgentStats& stats() const { return stats_; }

  // Replaces the Streamer list (ASSIGN). If the current session's Streamer is still listed it
  // stays up (its new key serves the next connections); otherwise the agent moves to the first.
  // Returns false (and changes nothing) if no entry can be used.
  bool SetStreamers(const std::vector<proto::AssignedStreamer>& streamers);
  // SWITCH: moves the control session to the listed Streamer at `url` now. False if unknown.
  bool SwitchTo(std::string_view url);
  void set_link_observer(LinkObserver observer) { observer_ = std::move(observer); }
  std::string current_url() const;
  // A verified peer told us the time (the manager's WELCOME): raises every Streamer's
  // certificate-time floor (cert_time.h).
  void RaiseTimeFloor(int64_t unix_seconds);

  // ControlSession::Delegate
  void OnWelcome(const Welcome& welcome) override;
  void OnOpen(proto::TunnelId tunnel, std::string_view service, const proto::Nonce& nonce) override;
  void OnSpare(proto::TunnelId tunnel, const proto::Nonce& nonce) override;
  void OnSessionEnded(const SessionEnd& end) override;

 private:
  void Connect();
  int64_t ReconnectDelayMs(const SessionEnd& end);
  void Reconnect(int64_t delay_ms);

  struct TunnelEntry {
    std::shared_ptr<Route> route;  // declared first: outlives the tunnel using it
    std::unique_ptr<Tunnel> tunnel;
  };
  struct SpareEntry {
    std::shared_ptr<Route> route;  // declared first: outlives the spare using it
    std::unique_ptr<SpareConnection> spare;
  };
  // Spares the agent keeps at most; the gateway asks for 1 by default.
  static constexpr size_t kMaxSpares = 4;

  // The configured service of that name, or null.
  const proto::ServiceEntry* FindService(std::string_view name) const;
  // The route a new data connection proves itself with (the newest key for this Streamer),
  // and where it dials: the address the control connection reached.
  std::shared_ptr<Route> DataRoute() const;
  GatewayTarget DataTarget(const Route& route) const;
  // Checks an OPEN (service exposed, id free, tunnel limit); the refusal's errno and text, or
  // 0 when it may go ahead.
  int CheckOpen(proto::TunnelId id, const proto::ServiceEntry* service, const char** why) const;
  Tunnel* AddTunnel(std::shared_ptr<Route> route, proto::TunnelId id,
                    const proto::ServiceEntry& service, const proto::Nonce& nonce, bool on_spare);
  void OnSpareOpen(std::shared_ptr<Route> route, proto::TunnelId id, const std::string& service,
                   std::unique_ptr<Transport> connection, std::span<const uint8_t> rest);

  EventLoop& loop_;
  std::string agent_id_;
  std::vector<proto::ServiceEntry> services_;
  FactoryMaker make_factory_;
  std::vector<std::shared_ptr<Route>> routes_;  // in ASSIGN order; one in static mode
  size_t current_ = 0;
  std::shared_ptr<Route> session_route_;  // the route of session_
  LinkObserver observer_;
  AgentOptions options_;
  Backoff backoff_;
  AgentStats stats_;
  bool stopped_ = true;  // until Start()

  int64_t welcome_at_ms_ = -1;        // when this session's WELCOME arrived
  uint32_t reconnect_window_ms_ = 0;  // from the last WELCOME
  std::unique_ptr<ControlSession> session_;
  Timer reconnect_timer_;
  std::map<proto::TunnelId, TunnelEntry> tunnels_;
  std::map<proto::TunnelId, SpareEntry> spares_;
};

// Host header / dial target for a configured gateway URL, reached through `proxy` if not null.
GatewayTarget MakeGatewayTarget(const GatewayUrl& url,
                                std::shared_ptr<const ProxyConfig> proxy = nullptr);

}  // namespace camtunnel::agent
