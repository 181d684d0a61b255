// Everything the gateway keeps on one shard: its listeners, TLS context, keys, agent registry
// and metric cells. Handlers (handshakes, sessions, frontend connections, tunnels) reach shared
// shard state through it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "gateway/agent_registry.h"
#include "gateway/agent_waiters.h"
#include "gateway/config.h"
#include "gateway/frontend_route.h"
#include "gateway/gateway.h"
#include "gateway/gateway_metrics.h"
#include "gateway/relocations.h"
#include "gateway/source_allowlist.h"
#include "gateway/spare_pool.h"
#include "gateway/streamer_keys.h"
#include "proto/control_link.h"
#include "runtime/ktls_probe.h"
#include "runtime/listener.h"
#include "runtime/shard.h"
#include "runtime/stream.h"
#include "runtime/ticket_keys.h"
#include "runtime/tls_context.h"

namespace camtunnel::http {
class Server;
}  // namespace camtunnel::http

namespace camtunnel::gateway {

class GatewayShard {
 public:
  // `gateway` is the process with the other shards; null for a lone shard (tests, tools).
  GatewayShard(runtime::Shard& shard, GatewayConfig config, StreamerKeys keys,
               Gateway* gateway = nullptr);
  ~GatewayShard();

  // Opens the configured listeners and starts accepting. Call on the shard's thread (or
  // before its loop runs). `bound`: the first shard's listeners (BoundListeners), which a later
  // shard joins with SO_REUSEPORT; null for the first shard, which also opens the admin
  // listener and checks that no other process holds the ports.
  absl::Status Start(const GatewayConfig* bound = nullptr);
  // The configuration's listen addresses with the ports actually bound (port 0 resolved).
  GatewayConfig BoundListeners() const;
  // Stops accepting on the agent and frontend listeners (the admin listener stays, so /readyz
  // can say "draining").
  void StopAccepting();
  // Applies a reloaded configuration (already checked by ResolveConfig): re-reads the
  // certificate, key and streamer keys files it names, then swaps every live option (timeouts,
  // limits, tokens, allowlist, suffix). Listeners stay as they are (a restart changes them). New
  // connections use the new values; live ones keep their TLS context. On any error nothing
  // changes and the error is returned.
  absl::Status Reload(GatewayConfig fresh);

  // Drain: stop accepting, /readyz 503, GOAWAY (reconnect after drain_reconnect_ms) to every
  // agent, then wait for open tunnels and requests still being routed to finish, up to
  // drain_timeout_ms after the drain began. `on_drained` (may be empty) runs on the shard's
  // thread once that is reached; calling Drain again while draining only adds the callback.
  void Drain(std::function<void()> on_drained);
  bool draining() const { return draining_; }
  bool drained() const { return drained_; }
  // Frontend connections still routing a request (not yet a tunnel), for the drain.
  void FrontendWaiting(int delta) { frontend_waiting_ += delta; }

  runtime::Shard& shard() { return shard_; }
  unsigned index() const { return shard_.id(); }
  unsigned shard_count() const { return gateway_ != nullptr ? gateway_->size() : 1; }
  unsigned HomeShard(std::string_view agent_id) const {
    return HomeShardOf(agent_id, shard_count());
  }
  // From this shard's thread: runs `fn` on shard `to` (inline when it is this one). False when
  // the queue there is full: the caller refuses the work (and counts it), never waits.
  bool PostTo(unsigned to, ShardFn fn);
  // Once `stream` has detached (runtime::Stream::Detach): queues `adopt` (which attaches it on
  // shard `to`) and counts the hand-over. When that queue is full the stream is attached back
  // here to `handler`, the refusal counted, and false returned: the caller answers "busy".
  bool HandOver(unsigned to, runtime::Stream* stream, runtime::StreamHandler* handler,
                ShardFn adopt);
  Gateway* gateway() { return gateway_; }
  const GatewayConfig& config() const { return config_; }
  // What every control link on this shard runs with (proto/control_link.h), from config().
  const proto::LinkProfile& control_link_profile() const { return control_link_profile_; }
  const StreamerKeys& keys() const { return keys_; }
  AgentRegistry& registry() { return registry_; }
  ShardMetrics& metrics() { return metrics_; }
  const FrontendRouteConfig& route_config() const { return route_config_; }
  bool tls_enabled() const { return static_cast<bool>(tls_ctx_); }
  bool Denied(std::string_view agent_id) const {
    return denylist_.contains(absl::string_view(agent_id.data(), agent_id.size()));
  }
  // Revocation (DESIGN "Keys"): the manager pushes deactivated agents here, so their keys stop
  // working at once, not only at expiry. In memory: after a restart the manager pushes again.
  void Deny(std::string agent_id) { denylist_.insert(std::move(agent_id)); }
  bool Allow(std::string_view agent_id) {
    return denylist_.erase(absl::string_view(agent_id.data(), agent_id.size())) > 0;
  }
  const absl::flat_hash_set<std::string>& denylist() const { return denylist_; }
  // Where the manager says agents went (PUT /api/v1/relocations/{id}): a request for one that
  // is not online here is redirected there. In memory, like the denylist.
  Relocations& relocations() { return relocations_; }
  // Media requests waiting for their agent while this process takes over from another.
  AgentWaiters& agent_waiters() { return agent_waiters_; }
  SparePool& spares() { return spares_; }
  // A request for an agent not connected here waits for it (--takeover, early in the process).
  bool HoldsRequestsForAgents() const {
    return config_.takeover && !draining_ && shard_.now_ms() < takeover_until_ms_;
  }

  // Bound ports, for tests and the demo's printout (first listener of each kind).
  uint16_t agent_tls_port() const;
  uint16_t agent_plain_port() const;
  uint16_t frontend_port() const;
  uint16_t admin_port() const;
  // Serves the admin listener's connections, and those moved here from another shard.
  http::Server& admin_server() { return *admin_server_; }
  bool ready() const {
    return started_ && !draining_ && (gateway_ == nullptr || gateway_->all_started());
  }

  // This shard's gauges at scrape time. Own thread only.
  GatewayFacts CollectFacts();
  // Prometheus text for a lone shard (with a Gateway, the admin connection gathers every
  // shard's facts instead).
  std::string RenderMetricsText();

  // Live handlers by kind, so a shutdown can close what is still open.
  uint64_t connections() const { return connections_; }
  void ConnectionOpened() { ++connections_; }
  void ConnectionClosed() { --connections_; }

 private:
  void AcceptAgent(int fd, bool tls);
  absl::Status OpenAgentListeners(bool exclusive);
  // Takeover, first shard: polls until the old process has released the agent ports, then opens
  // the agent listeners on every shard.
  void AwaitAgentPorts();
  static constexpr uint64_t kTakeoverPollMs = 20;
  void AcceptFrontend(int fd);
  void CheckDrained();
  void AcceptAdmin(int fd);
  absl::Status LoadTicketKeys(const std::string& file);
  void ApplyHandshakeBudget();
  // Sets SSL_OP_ENABLE_KTLS on `ctx` where the kernel has kTLS and `config` wants it.
  void OfferKernelTls(SSL_CTX* ctx, const GatewayConfig& config) const;
  absl::Status Listen(const std::vector<std::string>& addresses, bool exclusive,
                      std::vector<std::unique_ptr<runtime::Listener>>* out,
                      const runtime::Listener::AcceptFn& fn,
                      const runtime::AcceptBudget& budget = {});

  runtime::Shard& shard_;
  Gateway* gateway_;
  GatewayConfig config_;
  proto::LinkProfile control_link_profile_;
  void UpdateControlLinkProfile();
  StreamerKeys keys_;
  // Before tls_ctx_: every context's ticket callback points at these keys, which every shard
  // of the process shares (tickets resume on whichever shard a connection lands).
  std::shared_ptr<runtime::TicketKeys> ticket_keys_;
  // This shard's OpenSSL library context (before tls_ctx_, which is made from it): handshakes
  // on different shards then fetch algorithms without sharing the default context's locks.
  runtime::LibCtxPtr libctx_{OSSL_LIB_CTX_new()};
  runtime::SslCtxPtr tls_ctx_;
  runtime::KtlsSupport ktls_;
  AgentRegistry registry_;
  ShardMetrics metrics_;
  FrontendRouteConfig route_config_;
  SourceAllowlist frontend_allow_;
  absl::flat_hash_set<std::string> denylist_;
  Relocations relocations_;
  AgentWaiters agent_waiters_;
  SparePool spares_{*this};
  uint64_t takeover_until_ms_ = 0;
  runtime::Timer takeover_timer_;
  std::vector<std::unique_ptr<runtime::Listener>> agent_tls_listeners_;
  std::vector<std::unique_ptr<runtime::Listener>> agent_plain_listeners_;
  std::vector<std::unique_ptr<runtime::Listener>> frontend_listeners_;
  std::vector<std::unique_ptr<runtime::Listener>> admin_listeners_;
  // The admin API (gateway/admin/): every shard has one, for requests moved to it.
  std::unique_ptr<http::Server> admin_server_;
  uint64_t connections_ = 0;
  bool started_ = false;
  bool draining_ = false;
  bool drained_ = false;
  uint64_t drain_deadline_ms_ = 0;
  int64_t frontend_waiting_ = 0;
  runtime::Timer drain_timer_;
  std::vector<std::function<void()>> on_drained_;
};

}  // namespace camtunnel::gateway
