#include "agentsim/managed_agent.h"

#include <algorithm>

#include "proto/activation_message.h"
#include "proto/manager_order.h"

namespace camtunnel::agentsim {

ManagedSimAgent::ManagedSimAgent(SimContext& ctx, ManagedAgentObserver& observer,
                                 SimAgent& gateway_agent, const UrlEndpoint& activation,
                                 const proto::Digest& factory_secret)
    : ctx_(ctx),
      observer_(observer),
      gateway_agent_(gateway_agent),
      activation_(activation),
      factory_secret_(factory_secret),
      link_(ctx, *this) {
  retry_timer_.set_callback([this] {
    if (stopped_ || ctx_.stopping) {
      return;
    }
    if (retry_activation_) {
      Activate(retry_reactivation_);
    } else {
      ConnectManager();
    }
  });
  gateway_agent_.set_session_listener([this](bool up) { OnGatewaySession(up); });
}

void ManagedSimAgent::Start() { Activate(false); }

void ManagedSimAgent::Stop() {
  stopped_ = true;
  ctx_.shard.timers().Cancel(retry_timer_);
  link_.Close();
}

uint64_t ManagedSimAgent::NextBackoffMs() {
  const uint64_t cap = std::min<uint64_t>(ctx_.options.backoff_max_ms,
                                          kBackoffBaseMs << std::min<uint32_t>(failures_, 16));
  failures_ = std::min<uint32_t>(failures_ + 1, 20);
  return ctx_.Random(cap) + 1;
}

void ManagedSimAgent::RetryIn(uint64_t delay_ms, bool activation, bool reactivation) {
  if (stopped_ || ctx_.stopping) {
    return;
  }
  retry_activation_ = activation;
  retry_reactivation_ = reactivation;
  ctx_.shard.timers().Arm(retry_timer_, ctx_.shard.now_ms(), std::max<uint64_t>(delay_ms, 1));
}

void ManagedSimAgent::Activate(bool reactivation) {
  std::optional<proto::Digest> proof;
  if (reactivation && secret_) {
    proof = proto::ReactivationProof(*secret_, id());
  }
  const std::string body = proto::BuildActivationBody(
      id(), factory_secret_, ctx_.options.operator_id, proof ? &*proof : nullptr);
  ManagedStats& s = ctx_.stats.managed;
  const uint64_t now = ctx_.shard.now_ms();
  ++s.activation_requests;
  if (s.first_activation_request_ms == 0) {
    s.first_activation_request_ms = now;
  }
  ActivationExchange::Start(ctx_, activation_, gateway_agent_.identity().index, body,
                            kActivationTimeoutMs,
                            [this, reactivation, now](const ActivationAnswer& answer) {
                              OnActivationAnswer(reactivation, now, answer);
                            });
}

void ManagedSimAgent::OnActivationAnswer(bool reactivation, uint64_t started_ms,
                                         const ActivationAnswer& answer) {
  if (first_activation_pending_) {
    first_activation_pending_ = false;
    observer_.OnFirstActivationEnded();
  }
  if (stopped_) {
    return;
  }
  ManagedStats& s = ctx_.stats.managed;
  if (answer.status == 0) {
    ++s.activations[answer.failure];
    RetryIn(NextBackoffMs(), true, reactivation);
    return;
  }
  if (answer.status != 200) {
    ++s.activations["status_" + std::to_string(answer.status)];
    if (answer.status == 409 && secret_ && !reactivation) {
      // Already active, and we hold its secret: ask again with the proof.
      RetryIn(ctx_.Random(kBackoffBaseMs) + 1, true, true);
      return;
    }
    if (answer.status == 401 || answer.status == 403 || answer.status == 409) {
      failures_ = 20;  // will not heal soon: back off at the cap
    }
    // The server's Retry-After is a floor; the jitter spreads the fleet beyond it.
    uint64_t delay = NextBackoffMs();
    if (answer.retry_after_ms > 0) {
      delay += static_cast<uint64_t>(answer.retry_after_ms);
    }
    RetryIn(delay, true, reactivation);
    return;
  }
  std::string error;
  auto parsed = proto::ParseActivationResult(answer.body, &error);
  if (!parsed || parsed->agent_id != id() || (!reactivation && !parsed->agent_secret)) {
    ++s.activations["unusable_answer"];
    RetryIn(NextBackoffMs(), true, reactivation && secret_);
    return;
  }
  if (parsed->agent_secret) {
    secret_ = *parsed->agent_secret;  // kept before the rest of the answer is judged
    // A fresh secret (for a reactivation too: the managers' database no longer had this agent
    // active) starts the agent over: command ids are the new record's.
    last_command_id_ = 0;
  }
  const uint64_t now = ctx_.shard.now_ms();
  ++s.activations[parsed->agent_secret ? "activated" : "reactivated"];
  s.activation_us.Record((now - started_ms) * 1000);
  s.last_activation_ms = now;
  if (parsed->manager_url.empty()) {
    ++s.link_failures["no_manager_url"];
    RetryIn(NextBackoffMs(), true, true);
    return;
  }
  manager_url_ = parsed->manager_url;
  manager_urls_ = parsed->manager_urls;
  manager_index_ = 0;
  if (parsed->agent_secret) {
    // Only a fresh secret (or a WELCOME) resets the backoff: a refused link answered by a
    // reactivation without one slows down to the cap, as camtunnel-agent's does.
    failures_ = 0;
  }
  ConnectManager();
}

std::vector<std::string> ManagedSimAgent::ManagerOrder() const {
  const std::string scheme = manager_url_.substr(0, manager_url_.find(':') + 1);
  std::vector<std::string> usable;
  for (const std::string& url : manager_urls_) {
    if (url.starts_with(scheme)) {
      usable.push_back(url);
    }
  }
  if (usable.empty()) {
    return {manager_url_};
  }
  return proto::OrderManagers(id(), usable);
}

void ManagedSimAgent::ConnectManager() {
  if (stopped_ || deactivated_ || manager_url_.empty() || !secret_ || ctx_.stopping) {
    return;
  }
  const std::vector<std::string> order = ManagerOrder();
  auto endpoint = ctx_.endpoints->Find(order[manager_index_ % order.size()]);
  if (!endpoint.ok()) {
    ++ctx_.stats.managed.link_failures["bad_manager_url"];
    RetryIn(NextBackoffMs(), true, true);  // ask the activation server where it is now
    return;
  }
  link_.Connect(**endpoint, gateway_agent_.identity().index, id(), *secret_);
}

bool ManagedSimAgent::TakeCommand(uint64_t command_id) {
  if (command_id <= last_command_id_) {
    return false;
  }
  last_command_id_ = command_id;
  return true;
}

void ManagedSimAgent::OnManagerLinkUp(const proto::LinkWelcome& welcome) {
  failures_ = 0;
  reconnect_window_ms_ = welcome.reconnect_window_ms;
  if (!welcome.managers.empty()) {
    manager_urls_ = welcome.managers;
  }
  ManagedStats& s = ctx_.stats.managed;
  if (link_lost_ms_ != 0) {
    ++s.relinks;
    s.relink_us.Record((ctx_.shard.now_ms() - link_lost_ms_) * 1000);
    link_lost_ms_ = 0;
  }
  if (!ever_linked_) {
    ever_linked_ = true;
    observer_.OnFirstLink();
  }
  if (gateway_agent_.up()) {
    link_.SendStatus("streamer=" + current_url_ + " state=connected");
  }
}

void ManagedSimAgent::OnAssign(std::vector<proto::AssignedStreamer> streamers) {
  ++ctx_.stats.managed.assigns;
  assigned_ = std::move(streamers);
  // Stay where we are when the list still names it (with its fresh key); else the first.
  auto it =
      std::find_if(assigned_.begin(), assigned_.end(),
                   [this](const proto::AssignedStreamer& s) { return s.url == current_url_; });
  UseStreamer(it != assigned_.end() ? *it : assigned_.front());
  if (gateway_agent_.up()) {
    link_.SendStatus("streamer=" + current_url_ + " state=connected");
  }
}

void ManagedSimAgent::OnSwitch(std::string_view url) {
  ++ctx_.stats.managed.switches;
  auto it = std::find_if(assigned_.begin(), assigned_.end(),
                         [url](const proto::AssignedStreamer& s) { return s.url == url; });
  if (it == assigned_.end()) {
    ++ctx_.stats.managed.assign_errors["switch_not_assigned"];
    return;
  }
  UseStreamer(*it);
}

void ManagedSimAgent::UseStreamer(const proto::AssignedStreamer& streamer) {
  auto endpoint = ctx_.endpoints->Find(streamer.url);
  if (!endpoint.ok()) {
    ++ctx_.stats.managed.assign_errors["bad_url"];
    return;
  }
  if ((*endpoint)->tls && ctx_.tls_ctx == nullptr) {
    ++ctx_.stats.managed.assign_errors["https_without_ca"];
    return;
  }
  const bool moved = streamer.url != current_url_;
  current_url_ = streamer.url;
  gateway_agent_.SetGateway(**endpoint, streamer.key_ref, streamer.agent_key);
  if (gateway_agent_.stopped()) {
    return;
  }
  if (gateway_agent_.idle()) {
    observer_.ConnectGateway(gateway_agent_);
  } else if (moved) {
    gateway_agent_.Drop(0);  // reconnects at once, to the new Streamer
  }
}

void ManagedSimAgent::OnGatewaySession(bool up) {
  link_.SendStatus("streamer=" + current_url_ + (up ? " state=connected" : " state=lost"));
}

void ManagedSimAgent::OnManagerLinkEnded(const ManagerLinkEnd& end) {
  if (stopped_ || deactivated_) {
    return;
  }
  ManagedStats& s = ctx_.stats.managed;
  switch (end.command) {
    case ManagerLinkEnd::Command::kDeactivate:
      ++s.deactivations;
      deactivated_ = true;
      gateway_agent_.Stop();
      return;
    case ManagerLinkEnd::Command::kRestart:
      // A real agent re-executes: both links go and come back at once.
      ++s.restarts;
      gateway_agent_.Drop(0);
      ConnectManager();
      return;
    case ManagerLinkEnd::Command::kNone:
      break;
  }
  if (end.established && link_lost_ms_ == 0) {
    link_lost_ms_ = ctx_.shard.now_ms();
  }
  if (end.upgrade_refused) {
    // 401/403: the managers' database does not have this agent active (it lost the
    // activation, or the agent was deactivated while away). Back to activation with the proof
    // of the secret held, as camtunnel-agent does (PROTOCOL.md 10.2).
    RetryIn(NextBackoffMs(), true, true);
    return;
  }
  if (end.refused) {
    failures_ = 20;  // the manager does not know this secret: not soon
  }
  const size_t managers = ManagerOrder().size();
  uint64_t delay = 0;
  if (end.established) {
    // A link that worked ended, after a random share of the manager's reconnect window so its
    // fleet does not return at once (PROTOCOL.md section 6): the first choice again, or, from a
    // manager that fell silent, the next of the order (PROTOCOL.md 10.5), as the agent does.
    manager_index_ = end.silent && managers > 1 ? (manager_index_ + 1) % managers : 0;
    delay = reconnect_window_ms_ > 0 ? ctx_.Random(reconnect_window_ms_) + 1 : NextBackoffMs();
  } else if (!end.refused && managers > 1 && (manager_index_ + 1) % managers != 0) {
    // Unreachable, busy or failing: the next manager of this agent's order, at once but for a
    // little jitter; the backoff applies once the whole list has failed.
    ++manager_index_;
    ++s.failovers;
    delay = ctx_.Random(250) + 1;
  } else {
    manager_index_ = 0;
    delay = NextBackoffMs();
  }
  if (end.retry_after_ms > 0) {
    delay += static_cast<uint64_t>(end.retry_after_ms);
  }
  RetryIn(delay, false, false);
}

}  // namespace camtunnel::agentsim
