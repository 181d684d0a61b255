// See manager_server.h.
#include "manager/manager_server.h"

#include <time.h>

#include "absl/strings/str_cat.h"
#include "manager/admin/admin_routes.h"
#include "manager/agent_link.h"
#include "manager/command_listener.h"
#include "manager/handover_service.h"
#include "manager/public_server.h"
#include "metrics/exposition.h"
#include "runtime/log.h"

namespace camtunnel::manager {

ManagerServer::ManagerServer(runtime::Shard& shard, ManagerConfig config, Store& store,
                             ActivationService& activation, StreamerPool& pool)
    : shard_(shard),
      config_(std::move(config)),
      link_profile_{.role = proto::LinkRole::kServer,
                    .kind = proto::LinkKind::kManager,
                    .capabilities = proto::kCapPlainFrameMac,
                    .heartbeat_ms = config_.heartbeat_ms,
                    .reconnect_window_ms = config_.reconnect_window_ms,
                    .managers = config_.manager_urls},
      store_(store),
      seen_(std::make_unique<SeenBatcher>(shard, store, config_.seen_flush_ms)),
      commands_(std::make_unique<CommandDesk>(*this, config_.command_sweep_ms)),
      activation_(activation),
      pool_(pool) {
  store_check_.set_callback([this] { CheckStore(); });
}

ManagerServer::~ManagerServer() { shard_.timers().Cancel(store_check_); }

// Reconciles the Streamer load from the store and finds out whether it can be reached; the
// next check is armed when this one's answers are in, so a slow database never piles them up.
void ManagerServer::CheckStore() {
  store_.Run<absl::StatusOr<std::map<std::string, uint64_t>>>(
      {}, [](StoreConnection& c) { return c.CountAssignedByStreamer(); },
      [this](absl::StatusOr<std::map<std::string, uint64_t>> counts) {
        store_.Observe(counts.status());
        if (counts.ok()) {
          load_.Reconcile({counts->begin(), counts->end()});
        }
        shard_.timers().Arm(store_check_, shard_.now_ms(), config_.store_check_ms);
      });
}

namespace {

// Streamer health's store jobs share one worker, in order: a read issued before a write never
// lands after it.
constexpr std::string_view kHealthKey = "streamer_health";

}  // namespace

int64_t ManagerServer::WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

absl::Status ManagerServer::Start() {
  auto ctx = runtime::CreateServerContext(config_.tls);
  if (!ctx.ok()) {
    return ctx.status();
  }
  tls_ctx_ = std::move(*ctx);
  public_server_ = MakePublicServer(*this);
  admin_server_ = admin::MakeAdminServer(*this);
  for (const std::string& address : config_.listen) {
    auto l = runtime::Listener::Open(
        shard_, address,
        [this](int fd) { AcceptPublic(*this, *public_server_, fd, /*plain=*/false); },
        /*exclusive=*/true, {config_.handshakes_per_second, config_.handshake_burst});
    if (!l.ok()) {
      return l.status();
    }
    listeners_.push_back(std::move(*l));
  }
  for (const std::string& address : config_.plain_listen) {
    auto l = runtime::Listener::Open(shard_, address, [this](int fd) {
      AcceptPublic(*this, *public_server_, fd, /*plain=*/true);
    });
    if (!l.ok()) {
      return l.status();
    }
    plain_listeners_.push_back(std::move(*l));
  }
  for (const std::string& address : config_.admin_listen) {
    auto l =
        runtime::Listener::Open(shard_, address, [this](int fd) { admin_server_->Accept(fd); });
    if (!l.ok()) {
      return l.status();
    }
    admin_listeners_.push_back(std::move(*l));
  }
  lease_ = std::make_unique<LeaderLease>(shard_, store_, "leader", config_.manager_id,
                                         config_.leader_lease_ms);
  retention_ = std::make_unique<HistoryRetention>(shard_, *lease_, config_.history_retention_ms,
                                                  config_.retention_check_ms);
  stored_health_.assign(pool_.size(), std::nullopt);
  // Start from the deployment's verdicts, not from "all healthy": a manager restarted while a
  // Streamer is down must not send the agents relinking to it there. Blocking is fine here:
  // the ring does not run yet.
  if (auto stored = store_.Sync<absl::StatusOr<std::map<std::string, bool>>>(
          [](StoreConnection& c) { return c.ListStreamerHealth(); });
      stored.ok()) {
    ApplyStoredHealth(*stored, /*follow=*/false);
  }
  StartStreamerWork();
  lease_->set_on_change([this](bool leading) { LeadershipChanged(leading); });
  lease_->Start();
  retention_->Start();
  health_sync_.set_callback([this] { SyncHealth(); });
  SyncHealth();
  CheckStore();
  commands_->Start();
  return absl::OkStatus();
}

void ManagerServer::StopAccepting() {
  seen_->Flush();
  shard_.timers().Cancel(health_sync_);
  retention_.reset();
  if (lease_) {
    lease_->Release();
  }
  health_.reset();
  revocations_.reset();
  relocation_push_.reset();
  for (auto& l : listeners_) {
    l->Close();
  }
  for (auto& l : plain_listeners_) {
    l->Close();
  }
  for (auto& l : admin_listeners_) {
    l->Close();
  }
}

uint16_t ManagerServer::port() const { return listeners_.empty() ? 0 : listeners_[0]->port(); }

uint16_t ManagerServer::plain_port() const {
  return plain_listeners_.empty() ? 0 : plain_listeners_[0]->port();
}

uint16_t ManagerServer::admin_port() const {
  return admin_listeners_.empty() ? 0 : admin_listeners_[0]->port();
}

void ManagerServer::Register(AgentLink* link) {
  auto [it, fresh] = links_.try_emplace(link->agent_id(), link);
  if (!fresh && it->second != link) {
    // Newest authenticated link wins (the old one may be a half-dead connection the agent has
    // already given up on). Repeated replacement is the sign of a cloned secret: counted.
    AgentLink* old = it->second;
    it->second = link;
    old->Replace();
  }
}

void ManagerServer::Unregister(AgentLink* link) {
  auto it = links_.find(link->agent_id());
  if (it != links_.end() && it->second == link) {
    links_.erase(it);
  }
}

AgentLink* ManagerServer::FindLink(std::string_view agent_id) {
  auto it = links_.find(std::string(agent_id));
  return it == links_.end() ? nullptr : it->second;
}

std::vector<proto::AssignedStreamer> ManagerServer::AssignmentFor(std::string_view agent_id,
                                                                  std::string_view current_url,
                                                                  std::string_view preferred) {
  auto load = [this, current_url](std::string_view url) -> size_t {
    return static_cast<size_t>(load_.Load(url, current_url));
  };
  return pool_.Assign(agent_id, static_cast<uint64_t>(WallMs() / 1000), load, preferred);
}

void ManagerServer::StartStreamerWork() {
  health_ = std::make_unique<HealthChecker>(shard_, pool_, config_.health_interval_ms,
                                            config_.health_timeout_ms);
  revocations_ = std::make_unique<Revocations>(shard_, pool_, config_.health_interval_ms,
                                               config_.health_timeout_ms);
  relocation_push_ = std::make_unique<RelocationPush>(shard_, pool_, config_.health_interval_ms,
                                                      config_.health_timeout_ms);
  health_->set_active([this] { return lease_->leading(); });
  // The leader's verdicts (only the leader probes). A Streamer that comes back may have
  // restarted: its denylist lives in memory only, and the leader resends it, once.
  health_->set_on_healthy([this](size_t streamer) {
    PublishHealth(streamer, true);
    relocation_push_->Flush(streamer);
    ResendDenylist(streamer, /*leader_only=*/true);
  });
  health_->set_on_unhealthy([this](size_t streamer) {
    if (stored_health_[streamer] != false) {
      PublishHealth(streamer, false);
    }
    MoveOffStreamer(streamer);
  });
  health_->Start();
}

void ManagerServer::ResendDenylist(size_t streamer, bool leader_only) {
  store_.Run<absl::StatusOr<std::vector<std::string>>>(
      {}, [](StoreConnection& c) { return c.ListDeactivated(); },
      [this, streamer, leader_only](absl::StatusOr<std::vector<std::string>> revoked) {
        store_.Observe(revoked.status());
        if (revoked.ok() && revocations_ != nullptr && streamer < pool_.size() &&
            (!leader_only || lease_->leading())) {
          revocations_->Resend(streamer, *revoked);
        }
      });
}

absl::Status ManagerServer::Reload(ReloadSet set) {
  auto ctx = runtime::CreateServerContext(config_.tls);
  if (!ctx.ok()) {
    ++counters_.reloads_failed;
    runtime::LogEvent(runtime::LogLevel::kError, "reload_failed",
                      {runtime::Kv("error", ctx.status().message())});
    return ctx.status();
  }
  // Connections already up keep the context they were made with (each SSL holds a reference).
  tls_ctx_ = std::move(*ctx);
  activation_.set_operators(std::move(set.operators));
  config_.config_digest = std::move(set.config_digest);
  // The per-Streamer work is rebuilt for the new indexes. Its pending pushes go with it: the
  // denylist is sent again in full to every Streamer below (a revoked agent must stay out), a
  // relocation notice is only a redirect hint (lookups still answer).
  health_.reset();
  revocations_.reset();
  relocation_push_.reset();
  pool_.Replace(std::move(set.streamers));
  stored_health_.assign(pool_.size(), std::nullopt);
  StartStreamerWork();
  if (lease_->leading()) {
    health_->Resume();
  }
  SyncHealth();
  for (size_t i = 0; i < pool_.size(); ++i) {
    ResendDenylist(i, /*leader_only=*/false);
  }
  // Every linked agent learns the new list; one whose Streamer left it moves now.
  std::vector<std::string> linked;
  linked.reserve(links_.size());
  for (const auto& [id, link] : links_) {
    if (link->established()) {
      linked.push_back(id);
    }
  }
  size_t moved = 0;
  for (const std::string& id : linked) {
    AgentLink* link = FindLink(id);  // sending may end a link
    if (link == nullptr) {
      continue;
    }
    const std::string& at =
        link->located_url().empty()
            ? (link->assigned().empty() ? std::string() : link->assigned().front().url)
            : link->located_url();
    const bool gone = !at.empty() && !pool_.Find(at).has_value();
    link->SendAssign();
    if (gone && !link->assigned().empty()) {
      link->SendSwitch(link->assigned().front().url, "streamer removed");
      ++moved;
    }
  }
  ++counters_.reloads_ok;
  runtime::LogEvent(runtime::LogLevel::kInfo, "reloaded",
                    {runtime::Kv("streamers", pool_.size()), runtime::Kv("links", linked.size()),
                     runtime::Kv("moved", moved)});
  return absl::OkStatus();
}

void ManagerServer::ApplyStoredHealth(const std::map<std::string, bool>& stored, bool follow) {
  for (size_t i = 0; i < pool_.size(); ++i) {
    auto it = stored.find(pool_.config(i).url);
    stored_health_[i] = it == stored.end() ? std::nullopt : std::optional<bool>(it->second);
    if (!stored_health_[i].has_value()) {
      continue;
    }
    if (follow) {
      FollowHealth(i, *stored_health_[i]);
    } else {
      pool_.SetHealthy(i, *stored_health_[i]);
    }
  }
}

void ManagerServer::SyncHealth() {
  shard_.timers().Arm(health_sync_, shard_.now_ms(), config_.health_interval_ms);
  store_.Run<absl::StatusOr<std::map<std::string, bool>>>(
      kHealthKey, [](StoreConnection& c) { return c.ListStreamerHealth(); },
      [this](absl::StatusOr<std::map<std::string, bool>> stored) {
        store_.Observe(stored.status());
        if (!stored.ok() || health_ == nullptr) {
          return;
        }
        if (!lease_->leading()) {
          ApplyStoredHealth(*stored, /*follow=*/true);
          return;
        }
        // A verdict the store missed (it was unreachable), or the last leader's that ours
        // replaces: the leader's own probes are what count now.
        for (size_t i = 0; i < pool_.size(); ++i) {
          auto it = stored->find(pool_.config(i).url);
          stored_health_[i] = it == stored->end() ? std::nullopt : std::optional<bool>(it->second);
          if (!pool_.config(i).admin_url.empty() && stored_health_[i] != pool_.healthy(i)) {
            PublishHealth(i, pool_.healthy(i));
          }
        }
      });
}

void ManagerServer::PublishHealth(size_t streamer, bool healthy) {
  const std::string& url = pool_.config(streamer).url;
  lease_->Fenced(
      kHealthKey,
      [url, healthy, now = WallMs()](StoreConnection& c) {
        return c.SetStreamerHealth(url, healthy, now);
      },
      [this, url, healthy](const absl::Status& st) {
        if (st.ok()) {
          // By URL: a reload may have changed the indexes meanwhile.
          if (std::optional<size_t> i = pool_.Find(url)) {
            stored_health_[*i] = healthy;
          }
        } else if (!absl::IsFailedPrecondition(st)) {
          store_.CheckWrite("streamer_health", st);  // SyncHealth publishes it again
        }
      });
}

void ManagerServer::FollowHealth(size_t streamer, bool healthy) {
  if (pool_.healthy(streamer) != healthy) {
    runtime::LogEvent(runtime::LogLevel::kInfo, "streamer_health_followed",
                      {runtime::Kv("streamer", pool_.config(streamer).url),
                       runtime::Kv("healthy", healthy), runtime::Kv("leader", lease_->holder())});
    pool_.SetHealthy(streamer, healthy);
    if (healthy) {
      relocation_push_->Flush(streamer);
    }
  }
  if (!healthy) {
    MoveOffStreamer(streamer);  // paced: every sync moves the next batch
  }
}

void ManagerServer::LeadershipChanged(bool leading) {
  if (!leading) {
    return;  // the checker stops by itself (set_active); the next sync follows the new leader
  }
  // Start from where the last leader left each Streamer, so its hysteresis carries over.
  store_.Run<absl::StatusOr<std::map<std::string, bool>>>(
      kHealthKey, [](StoreConnection& c) { return c.ListStreamerHealth(); },
      [this](absl::StatusOr<std::map<std::string, bool>> stored) {
        store_.Observe(stored.status());
        if (health_ == nullptr || !lease_->leading()) {
          return;
        }
        if (stored.ok()) {
          ApplyStoredHealth(*stored, /*follow=*/false);
        }
        health_->Resume();
      });
}

void ManagerServer::MoveOffStreamer(size_t streamer) {
  if (!pool_.any_healthy()) {
    return;
  }
  const std::string& url = pool_.config(streamer).url;
  const uint64_t now = shard_.now_ms();
  // Chosen first, moved after: sending may end a link, which unregisters it from links_.
  std::vector<std::string> chosen;
  for (const auto& [id, link] : links_) {
    if (chosen.size() >= config_.max_moves_per_check) {
      break;
    }
    if (link->established() && link->HeldBy(url) &&
        (link->health_moved_ms() == 0 ||
         now - link->health_moved_ms() >= config_.health_move_cooldown_ms)) {
      chosen.push_back(id);
    }
  }
  size_t moved = 0;
  for (const std::string& id : chosen) {
    AgentLink* link = FindLink(id);
    if (link == nullptr) {
      continue;
    }
    link->set_health_moved_ms(now);
    link->SendAssign();
    // The ASSIGN may still list the unhealthy Streamer (last, for an agent cut off from the
    // manager later); the SWITCH makes the agent leave it now.
    if (!link->assigned().empty() && link->assigned().front().url != url) {
      link->SendSwitch(link->assigned().front().url, "streamer unhealthy");
      ++moved;
    }
  }
  if (moved > 0) {
    counters_.health_moves += moved;
    runtime::LogEvent(runtime::LogLevel::kWarning, "agents_moved_off_streamer",
                      {runtime::Kv("streamer", url), runtime::Kv("agents", moved),
                       runtime::Kv("reason", "unhealthy")});
    // One entry per batch, not per agent: a drained node's whole fleet would be a write each.
    store_.Write("audit", url,
                 [entry = AuditEntry{.at_ms = WallMs(),
                                     .actor = "health",
                                     .action = "move",
                                     .subject = url,
                                     .detail = absl::StrCat(moved, " agents")}](
                     StoreConnection& c) { return c.Audit(entry); });
  }
}

void ManagerServer::AgentLocated(const std::string& agent_id, const std::string& from_url,
                                 const std::string& to_url) {
  const std::optional<size_t> to = pool_.Find(to_url);
  if (!to || relocation_push_ == nullptr) {
    return;
  }
  relocation_push_->Moved(agent_id, pool_.Find(from_url), *to);
}

bool ManagerServer::TryAdmitUnauthenticated() {
  if (unauthenticated_ >= config_.max_unauthenticated) {
    return false;
  }
  ++unauthenticated_;
  return true;
}

std::string ManagerServer::RenderMetrics() const {
  using metrics::FamilyBuilder;
  using prometheus::MetricType;
  const ManagerCounters& c = counters_;
  std::vector<prometheus::MetricFamily> families;
  auto counter = [&families](const char* name, const char* help, uint64_t value) {
    families.push_back(FamilyBuilder(name, help, MetricType::Counter)
                           .Counter({}, static_cast<double>(value))
                           .Take());
  };
  auto gauge = [&families](const char* name, const char* help, uint64_t value) {
    families.push_back(
        FamilyBuilder(name, help, MetricType::Gauge).Gauge({}, static_cast<double>(value)).Take());
  };
  // One counter family labelled `label`, a sample per (label value, count).
  auto labelled = [&families](const char* name, const char* help, const char* label,
                              const auto& counts) {
    FamilyBuilder f(name, help, MetricType::Counter);
    for (const auto& [value, count] : counts) {
      f.Counter({{label, std::string(value)}}, static_cast<double>(count));
    }
    families.push_back(f.Take());
  };
  gauge("camtunnel_manager_links", "Agents with an authenticated manager link.", links_.size());
  if (!config_.config_digest.empty()) {
    families.push_back(
        FamilyBuilder("camtunnel_manager_config_info",
                      "1, labelled with the digest of the Streamers, operators and manager list "
                      "this manager runs with: managers sharing a database must show one digest.",
                      MetricType::Gauge)
            .Gauge({{"sha256", config_.config_digest}, {"manager", config_.manager_id}}, 1)
            .Take());
  }
  size_t plain_links = 0;
  for (const auto& [id, link] : links_) {
    plain_links += link->plain() ? 1 : 0;
  }
  gauge("camtunnel_manager_plain_links",
        "Authenticated manager links over plain TCP (frames MACed, not encrypted).", plain_links);
  gauge("camtunnel_manager_unauthenticated_connections",
        "Public connections that have not authenticated yet.", unauthenticated_);
  counter("camtunnel_manager_connections_accepted_total", "Public connections accepted.",
          c.connections_accepted);
  counter("camtunnel_manager_connections_refused_busy_total",
          "Public connections closed at once over the unauthenticated cap.",
          c.connections_refused_busy);
  counter("camtunnel_manager_links_refused_busy_total",
          "Manager upgrades answered 503 because this manager holds max_links links.",
          c.links_refused_busy);
  counter("camtunnel_manager_bad_requests_total",
          "Public requests answered with an HTTP error status.", c.bad_requests);
  labelled("camtunnel_manager_link_errors_total",
           "Manager links refused or closed for a protocol error, by reason.", "reason",
           std::initializer_list<std::pair<const char*, uint64_t>>{
               {"unknown_agent", c.link_unknown_agent},
               {"bad_proof", c.link_bad_proof},
               {"malformed_frame", c.link_malformed_frames},
               {"frame_too_large", c.link_oversized_frames},
               {"timeout", c.link_timeouts},
               {"bad_mac", c.link_bad_macs},
               {"agent_bad_mac", c.link_agent_bad_macs}});
  counter("camtunnel_manager_plain_activations_refused_total",
          "Activation requests refused on a plain listener (activation is HTTPS only).",
          c.plain_activations_refused);
  uint64_t paced = 0;
  for (const auto& l : listeners_) {
    paced += l->paced_pauses();
  }
  labelled("camtunnel_manager_reloads_total",
           "Configuration reloads (SIGHUP) by result; a failed one changed nothing.", "result",
           std::initializer_list<std::pair<const char*, uint64_t>>{{"ok", c.reloads_ok},
                                                                   {"failed", c.reloads_failed}});
  counter("camtunnel_manager_accept_paced_total",
          "Times the TLS listeners paused accepting because the handshake budget "
          "(--handshakes_per_second) was spent: a storm being paced.",
          paced);
  counter("camtunnel_manager_links_established_total", "Manager links whose HELLO verified.",
          c.links_established);
  counter("camtunnel_manager_links_replaced_total",
          "Links closed because a newer link of the same agent authenticated.", c.links_replaced);
  counter("camtunnel_manager_assigns_sent_total", "ASSIGN frames sent.", c.assigns_sent);
  counter("camtunnel_manager_commands_sent_total", "SWITCH, DEACTIVATE and RESTART frames sent.",
          c.commands_sent);
  counter("camtunnel_manager_status_received_total", "STATUS frames received.", c.status_received);
  const CommandCounters& k = commands_->counters();
  labelled("camtunnel_manager_command_outcomes_total",
           "Operators' commands by what became of them: queued (recorded), sent to the agent's "
           "link, acked, refused by the agent, duplicate (a redelivery the agent had done), "
           "expired (not acknowledged before the deadline).",
           "outcome",
           std::initializer_list<std::pair<const char*, uint64_t>>{{"queued", k.queued},
                                                                   {"sent", k.sent},
                                                                   {"acked", k.acked},
                                                                   {"refused", k.refused},
                                                                   {"duplicate", k.duplicates},
                                                                   {"expired", k.expired}});
  if (command_listener_ != nullptr) {
    const CommandListenerCounters n = command_listener_->counters();
    counter("camtunnel_manager_command_notifications_total",
            "Command ids notified by PostgreSQL (LISTEN), malformed ones included.",
            n.notifications);
    counter("camtunnel_manager_command_notifications_malformed_total",
            "Command notifications whose payload was not a command id (ignored).", n.bad_payloads);
    counter("camtunnel_manager_command_listener_reconnects_total",
            "Times the command listener's session listened again after it was lost.", n.reconnects);
    gauge("camtunnel_manager_command_listener_up",
          "1 while the command listener's PostgreSQL session listens (0: commands recorded by "
          "other managers arrive with the sweep only).",
          n.up ? 1 : 0);
  }
  counter("camtunnel_manager_admin_unauthorized_total",
          "Admin requests refused for a missing or wrong bearer token.", c.admin_unauthorized);
  if (config_.role != ManagerRole::kManaging) {
    labelled("camtunnel_manager_activations_total", "Activation attempts by result.", "result",
             activation_.counts());
  }
  if (handover_ != nullptr) {
    labelled("camtunnel_manager_handovers_total",
             "Hand-over requests from a separate activation server, by result.", "result",
             handover_->counts());
  }
  if (handover_calls_ != nullptr) {
    labelled("camtunnel_manager_handover_calls_total",
             "Hand-over calls to the managing server, by outcome.", "result", *handover_calls_);
  }
  if (health_) {
    counter("camtunnel_manager_health_checks_total", "GET /readyz probes of Streamers.",
            health_->counters().checks);
    counter("camtunnel_manager_health_check_failures_total",
            "Probes that did not get 200 within the timeout.", health_->counters().failures);
  }
  if (lease_) {
    const LeaseCounters& l = lease_->counters();
    gauge("camtunnel_manager_leader",
          "1 while this manager holds the leader lease (health checks, retention): exactly one "
          "manager of a deployment should.",
          lease_->leading() ? 1 : 0);
    gauge("camtunnel_manager_leader_term",
          "Fencing term of the leader lease as this manager last saw it.",
          static_cast<uint64_t>(lease_->term()));
    labelled("camtunnel_manager_leader_changes_total",
             "This manager becoming the leader (gained) and ceasing to be it (lost).", "change",
             std::initializer_list<std::pair<const char*, uint64_t>>{{"gained", l.gained},
                                                                     {"lost", l.lost}});
    counter("camtunnel_manager_lease_renew_failures_total",
            "Lease renewals the store could not answer.", l.renew_failures);
    counter("camtunnel_manager_leader_fenced_out_total",
            "Leader writes refused because another manager had taken the lease.", l.fenced_out);
  }
  if (retention_) {
    counter("camtunnel_manager_history_pruned_total",
            "Rows of history (activations, audit, finished commands) deleted past retention.",
            retention_->pruned());
    counter("camtunnel_manager_history_prune_failures_total",
            "Retention batches that failed (retried at the next check).", retention_->failures());
  }
  // Pushes to every Streamer's admin API: by result, and how many wait for a confirmation.
  auto pushes = [&](const char* name, const char* help, const char* pending_name,
                    const char* pending_help, const AdminPushCounters& r) {
    labelled(name, help, "result",
             std::initializer_list<std::pair<const char*, uint64_t>>{{"pushed", r.pushed},
                                                                     {"failed", r.failed}});
    gauge(pending_name, pending_help, r.pending);
  };
  if (revocations_) {
    pushes("camtunnel_manager_revocations_total",
           "Pushes of revoked agents to Streamer denylists by result (a failed one is retried).",
           "camtunnel_manager_revocations_pending", "Revocations not yet confirmed by a Streamer.",
           revocations_->counters());
  }
  counter("camtunnel_manager_health_moves_total",
          "Agents sent ASSIGN and SWITCH because their Streamer was unhealthy or draining.",
          c.health_moves);
  if (relocation_push_) {
    pushes("camtunnel_manager_relocations_total",
           "Relocation notices (PUT or DELETE /api/v1/relocations/{id}) to Streamers by result (a "
           "failed one is retried).",
           "camtunnel_manager_relocations_pending",
           "Relocation notices not yet confirmed by a Streamer.", relocation_push_->counters());
  }
  FamilyBuilder healthy("camtunnel_manager_streamer_healthy", "Streamer health from its /readyz.",
                        MetricType::Gauge);
  for (size_t i = 0; i < pool_.size(); ++i) {
    healthy.Gauge({{"streamer", std::to_string(i)}}, pool_.healthy(i) ? 1 : 0);
  }
  families.push_back(healthy.Take());
  labelled("camtunnel_manager_store_write_errors_total",
           "State database writes that failed and were carried on without, by operation.", "op",
           store_.write_errors());
  gauge("camtunnel_manager_store_reachable",
        "1 while the state database answers (0: activation answers 503, links stay up).",
        store_.reachable() ? 1 : 0);
  gauge("camtunnel_manager_store_pending", "Store jobs queued or running on its workers.",
        store_.pending());
  counter("camtunnel_manager_store_jobs_total", "Store jobs finished.", store_.jobs_done());
  counter("camtunnel_manager_seen_flushes_total", "Batched writes of last-seen times and statuses.",
          seen_->flushes());
  counter("camtunnel_log_lines_suppressed_total", "Log lines dropped by the per-cause rate limit.",
          runtime::SuppressedLogLines());
  return metrics::RenderText(families);
}

}  // namespace camtunnel::manager
