// camtunnel-manager on one runtime shard: the public TLS listener (activation POSTs and agent
// manager links share it, like the gateway's port 443), optional plain listeners (manager links
// only, section 10.2 of PROTOCOL.md), the admin listener, the registry of
// live agent links, and the counters behind /metrics. One shard is plenty: a manager link is a
// heartbeat every few seconds and an occasional STATUS, and SQLite wants one writer anyway.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "http/server.h"
#include "manager/activation.h"
#include "manager/agent_totals.h"
#include "manager/command_desk.h"
#include "manager/health_checker.h"
#include "manager/history_retention.h"
#include "manager/leader_lease.h"
#include "manager/relocation_push.h"
#include "manager/revocations.h"
#include "manager/seen_batcher.h"
#include "manager/store.h"
#include "manager/streamer_load.h"
#include "manager/streamer_pool.h"
#include "proto/control_link.h"
#include "runtime/listener.h"
#include "runtime/shard.h"
#include "runtime/tls_context.h"

namespace camtunnel::manager {

class AgentLink;
class CommandListener;
class HandoverService;

// One deployment runs both roles on one database (kAll). Split, the activation server (public,
// Internet-facing) keeps no agent secret: it admits cameras and hands each over to the managing
// server (PROTOCOL.md section 10.4), which keeps the agents and their links.
enum class ManagerRole { kAll, kActivation, kManaging };

struct ManagerConfig {
  ManagerRole role = ManagerRole::kAll;
  std::vector<std::string> listen = {"127.0.0.1:7443"};        // TLS: activation + links
  std::vector<std::string> admin_listen = {"127.0.0.1:9320"};  // plain HTTP, admin API
  std::string admin_token;  // required (at start-up) when an admin listener is not loopback
  runtime::TlsServerFiles tls;
  // Plain TCP listeners for manager links (PROTOCOL.md section 10.2, frames MACed under the
  // manager session key). Empty unless the operator asks (--plain_listen): a manager with a
  // certificate never takes a plain link on its TLS listeners. Activation is refused here.
  std::vector<std::string> plain_listen;
  // This manager's name in the link registry and on the command rows it sends: unique among
  // the managers sharing a database.
  std::string manager_id = "manager";
  // An operator's command not acknowledged by then is expired (a clear failure).
  uint64_t command_ttl_ms = 60000;
  // Open command rows of the agents linked here are offered again this often (CommandDesk).
  uint64_t command_sweep_ms = 1000;
  // ConfigDigest() of what the managers of a deployment must agree on (exported for an alert).
  std::string config_digest;
  uint32_t heartbeat_ms = 5000;
  // After losing this manager an agent waits a random delay in [0, window) (WELCOME; PROTOCOL.md
  // section 6): a restarted manager is not hit by its whole fleet at once.
  uint32_t reconnect_window_ms = 10000;
  // Every manager of the deployment, announced in WELCOME (PROTOCOL.md 10.5); empty: none.
  std::vector<std::string> manager_urls;
  // Authenticated links this manager holds at most; past it an upgrade is answered 503 at once
  // ("busy": the agent tries the next manager of its list instead of timing out).
  size_t max_links = 20000;
  uint64_t handshake_timeout_ms = 5000;  // accept to verified HELLO (and to a full request)
  // Connections that have not yet proven anything (no verified HELLO): a flood of them must
  // not starve the agents already linked.
  size_t max_unauthenticated = 1024;
  // New connections on the TLS listeners admitted per second before any TLS work, as the
  // gateway paces its agents (runtime::AcceptBudget): a fleet relinking at once waits in the
  // kernel's backlog instead of starving heartbeats and health checks with handshakes, and the
  // handshakes that do start finish inside handshake_timeout_ms. 0: unpaced; burst 0: a tenth.
  uint32_t handshakes_per_second = 2000;
  uint32_t handshake_burst = 0;
  uint64_t health_interval_ms = 5000;  // GET /readyz of each Streamer with an admin URL
  uint64_t health_timeout_ms = 2000;
  // Agents moved off an unhealthy Streamer per failed check of it (each move is an ASSIGN, a
  // SWITCH and a SQLite write); the rest follow at the next checks. An agent moved this way is
  // not moved again for health_move_cooldown_ms (it may still be reconnecting).
  size_t max_moves_per_check = 100;
  uint64_t health_move_cooldown_ms = 10000;
  // Last-seen times and STATUS texts are written in batches this often (seen_batcher.h).
  uint64_t seen_flush_ms = 1000;
  // A live link's last-seen time reaches the store at most this often (heartbeats are every
  // heartbeat_ms); the admin API shows linked agents' exact time from memory.
  uint64_t seen_resolution_ms = 30000;
  // The in-memory Streamer load is reconciled from the store, and the store pinged (/readyz),
  // this often.
  uint64_t store_check_ms = 30000;
  // Once-only work (Streamer health and what follows it, retention) runs on the holder of a
  // lease in the store (leader_lease.h) that lives this long: a stopped or cut-off leader is
  // replaced within about one lifetime.
  uint64_t leader_lease_ms = 10000;
  // Activation attempts, audit entries and finished commands older than this are deleted by the
  // leader, every retention_check_ms; 0 keeps them forever.
  uint64_t history_retention_ms = uint64_t{90} * 24 * 3600 * 1000;
  uint64_t retention_check_ms = uint64_t{3600} * 1000;
};

// Counters (Prometheus names in manager_server.cc's RenderMetrics).
struct ManagerCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused_busy = 0;
  uint64_t links_refused_busy = 0;     // upgrades answered 503 at max_links
  uint64_t bad_requests = 0;           // malformed heads, bodies, unknown paths
  uint64_t link_unknown_agent = 0;     // upgrade for an agent we do not know (401)
  uint64_t link_bad_proof = 0;         // HELLO proof wrong
  uint64_t link_malformed_frames = 0;  // ERROR 3
  uint64_t link_oversized_frames = 0;  // ERROR 2
  uint64_t link_timeouts = 0;          // handshake or heartbeat deadline
  // Plain links: a frame from the agent failed its MAC (we sent ERROR 4); the agent reported
  // one of ours failing (its ERROR 4); POST /api/v1/activate tried on a plain listener.
  uint64_t link_bad_macs = 0;
  uint64_t link_agent_bad_macs = 0;
  uint64_t plain_activations_refused = 0;
  uint64_t links_established = 0;
  uint64_t links_replaced = 0;  // an older link of the same agent closed
  uint64_t assigns_sent = 0;
  uint64_t commands_sent = 0;  // SWITCH, DEACTIVATE, RESTART
  uint64_t status_received = 0;
  uint64_t admin_unauthorized = 0;
  uint64_t health_moves = 0;  // agents sent elsewhere because their Streamer was unhealthy
  uint64_t reloads_ok = 0;    // SIGHUP
  uint64_t reloads_failed = 0;
};

// What SIGHUP reloads besides the certificate (re-read from ManagerConfig::tls).
struct ReloadSet {
  std::vector<StreamerConfig> streamers;
  std::set<std::string> operators;
  std::string config_digest;  // ConfigDigest() of the new configuration
};

class ManagerServer {
 public:
  ManagerServer(runtime::Shard& shard, ManagerConfig config, Store& store,
                ActivationService& activation, StreamerPool& pool);
  ~ManagerServer();
  ManagerServer(const ManagerServer&) = delete;
  ManagerServer& operator=(const ManagerServer&) = delete;

  absl::Status Start();
  void StopAccepting();
  // SIGHUP, on the shard's thread: the certificate for new connections, the Streamer list and
  // the operators, without dropping a link. Every linked agent gets a fresh ASSIGN (and a
  // SWITCH if its Streamer left the list); every Streamer gets the denylist again. An error
  // (the certificate does not load) changes nothing.
  absl::Status Reload(ReloadSet set);

  uint16_t port() const;
  uint16_t plain_port() const;  // 0 without a plain listener
  uint16_t admin_port() const;

  runtime::Shard& shard() { return shard_; }
  const ManagerConfig& config() const { return config_; }
  // What every agent link runs with (proto/control_link.h), from config().
  const proto::LinkProfile& link_profile() const { return link_profile_; }
  Store& store() { return store_; }
  SeenBatcher& seen() { return *seen_; }
  CommandDesk& commands() { return *commands_; }
  uint64_t NextLinkSerial() { return ++link_serials_; }
  StreamerLoad& load() { return load_; }
  ActivationService& activation() { return activation_; }
  StreamerPool& pool() { return pool_; }
  SSL_CTX* tls_context() { return tls_ctx_.get(); }
  ManagerCounters& counters() { return counters_; }
  AgentTotals& agent_totals() { return agent_totals_; }

  // Wall clock (activation records, key expiry) and the shard's monotonic clock.
  static int64_t WallMs();

  // Link registry: the newest authenticated link of an agent wins.
  void Register(AgentLink* link);
  void Unregister(AgentLink* link);
  AgentLink* FindLink(std::string_view agent_id);
  size_t live_links() const { return links_.size(); }
  // The ASSIGN list for an agent right now, by the in-memory load; `current_url` is its present
  // assignment (not load it adds).
  std::vector<proto::AssignedStreamer> AssignmentFor(std::string_view agent_id,
                                                     std::string_view current_url,
                                                     std::string_view preferred = {});
  // The store answered, or could not be reached: /readyz says whether it can.
  bool store_reachable() const { return store_.reachable(); }

  // Sends every linked agent still on Streamer `streamer` (unhealthy: dead, or draining) a fresh
  // ASSIGN, healthy Streamers first by load, and a SWITCH to its first entry; paced by
  // max_moves_per_check and health_move_cooldown_ms. Nothing happens while no Streamer is
  // healthy (there is nowhere better to go).
  void MoveOffStreamer(size_t streamer);
  // An agent reported itself connected at `to_url`, after `from_url` (empty: unknown): the
  // Streamer it left is told where it went (RelocationPush).
  void AgentLocated(const std::string& agent_id, const std::string& from_url,
                    const std::string& to_url);

  // Unauthenticated connection accounting (public listener).
  bool TryAdmitUnauthenticated();
  void ReleaseUnauthenticated() { --unauthenticated_; }

  // Split roles (section 10.4): the managing side's service, the activation side's call
  // counters; both outlive the server.
  void AttachHandoverService(HandoverService* service) { handover_ = service; }
  HandoverService* handover() { return handover_; }
  void AttachHandoverCalls(const std::map<std::string, uint64_t>* counts) {
    handover_calls_ = counts;
  }

  // PostgreSQL's command notifications (main.cc starts the listener); exported in /metrics.
  void AttachCommandListener(const CommandListener* listener) { command_listener_ = listener; }

  std::string RenderMetrics() const;
  const HealthChecker* health() const { return health_.get(); }
  // Leadership of the once-only work; null before Start().
  const LeaderLease* lease() const { return lease_.get(); }
  // Pushes revoked agents to every Streamer's denylist; null before Start().
  Revocations* revocations() { return revocations_.get(); }

 private:
  runtime::Shard& shard_;
  ManagerConfig config_;
  proto::LinkProfile link_profile_;
  void CheckStore();
  // Streamer health through the store: the leader publishes its verdicts (fenced by its lease),
  // every other manager follows them; each moves the agents it holds off unhealthy Streamers.
  void SyncHealth();
  // The per-Streamer work (health checks, denylist and relocation pushes), built for the pool
  // as it is: at start and after a reload changed the list.
  void StartStreamerWork();
  // Sends Streamer `streamer` the whole denylist again (a restarted gateway keeps it in memory
  // only); `leader_only`: unless this manager has stopped leading meanwhile.
  void ResendDenylist(size_t streamer, bool leader_only);
  // Takes the store's Streamer health into the pool: following it (a follower: moves and
  // relocation flushes as the leader's verdicts change), or as a starting point.
  void ApplyStoredHealth(const std::map<std::string, bool>& stored, bool follow);
  void PublishHealth(size_t streamer, bool healthy);
  void FollowHealth(size_t streamer, bool healthy);
  void LeadershipChanged(bool leading);

  Store& store_;
  std::unique_ptr<SeenBatcher> seen_;
  std::unique_ptr<CommandDesk> commands_;
  uint64_t link_serials_ = 0;
  StreamerLoad load_;
  runtime::Timer store_check_;
  ActivationService& activation_;
  StreamerPool& pool_;
  runtime::SslCtxPtr tls_ctx_;
  std::unique_ptr<LeaderLease> lease_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<HistoryRetention> retention_;
  runtime::Timer health_sync_;
  // Streamer health as the store held it when last read or written (nullopt: no row).
  std::vector<std::optional<bool>> stored_health_;
  std::unique_ptr<Revocations> revocations_;
  std::unique_ptr<RelocationPush> relocation_push_;
  HandoverService* handover_ = nullptr;
  const std::map<std::string, uint64_t>* handover_calls_ = nullptr;
  const CommandListener* command_listener_ = nullptr;
  // The public listeners' requests (activation, manager upgrades) and the admin API's.
  std::unique_ptr<http::Server> public_server_;
  std::unique_ptr<http::Server> admin_server_;
  std::vector<std::unique_ptr<runtime::Listener>> listeners_;
  std::vector<std::unique_ptr<runtime::Listener>> plain_listeners_;
  std::vector<std::unique_ptr<runtime::Listener>> admin_listeners_;
  absl::flat_hash_map<std::string, AgentLink*> links_;
  size_t unauthenticated_ = 0;
  ManagerCounters counters_;
  AgentTotals agent_totals_;
};

}  // namespace camtunnel::manager
