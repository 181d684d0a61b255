// One simulated agent under a manager, doing what a managed camtunnel-agent does
// (agent/managed_agent.h, PROTOCOL.md section 10): it activates with its serial (its id) and
// factory secret, honouring 429/503 Retry-After with jittered backoff and answering 409 with a
// reactivation proof when it holds a secret; it links to the managers the answer and WELCOME
// name, in its rendezvous order (PROTOCOL.md 10.5): an attempt that fails (unreachable, or a
// close before any answer: "busy") moves on to the next at once, full-jitter backoff follows
// once the whole list failed, and a link that worked is retried at the first choice after a
// random share of WELCOME's reconnect window (backoff without one); it takes its gateway, key and
// key reference from ASSIGN, moves on SWITCH, drops and re-establishes both links on RESTART and
// stops on DEACTIVATE. Its gateway connection is the fleet's SimAgent and stays up while the
// manager link is down: tunnels never depend on the manager. STATUS goes up as the real agent's:
// "streamer=<url> state=connected|lost".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentsim/activation_exchange.h"
#include "agentsim/sim_agent.h"
#include "agentsim/sim_context.h"
#include "agentsim/sim_manager_link.h"
#include "agentsim/url_endpoint.h"
#include "proto/manager_link.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

// What a managed agent needs from its fleet.
class ManagedAgentObserver {
 public:
  // The first activation request of the agent was answered (frees its pacing slot).
  virtual void OnFirstActivationEnded() = 0;
  // The agent's manager link came up for the first time.
  virtual void OnFirstLink() = 0;
  // The agent's gateway connection should be made now (idle agents only; paced by the fleet).
  virtual void ConnectGateway(SimAgent& agent) = 0;

 protected:
  ~ManagedAgentObserver() = default;
};

class ManagedSimAgent final : private ManagerLinkDelegate {
 public:
  static constexpr uint64_t kActivationTimeoutMs = 10000;
  static constexpr uint64_t kBackoffBaseMs = 500;  // camtunnel-agent's (agent/backoff.h)

  ManagedSimAgent(SimContext& ctx, ManagedAgentObserver& observer, SimAgent& gateway_agent,
                  const UrlEndpoint& activation, const proto::Digest& factory_secret);
  ManagedSimAgent(const ManagedSimAgent&) = delete;
  ManagedSimAgent& operator=(const ManagedSimAgent&) = delete;

  void Start();
  void Stop();

  bool linked() const { return link_.up(); }
  bool deactivated() const { return deactivated_; }

 private:
  void Activate(bool reactivation);
  void OnActivationAnswer(bool reactivation, uint64_t started_ms, const ActivationAnswer& answer);
  void ConnectManager();
  // Runs `what` after `delay_ms` (one pending retry at a time).
  void RetryIn(uint64_t delay_ms, bool activation, bool reactivation);
  // Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^failures)).
  uint64_t NextBackoffMs();
  // The managers in this agent's order: the known list, restricted to the scheme of the
  // activation answer's URL, or that URL alone.
  std::vector<std::string> ManagerOrder() const;
  // Points the gateway connection at `streamer` (connecting or moving as needed).
  void UseStreamer(const proto::AssignedStreamer& streamer);
  void OnGatewaySession(bool up);
  const std::string& id() const { return gateway_agent_.identity().id; }

  // ManagerLinkDelegate
  void OnManagerLinkUp(const proto::LinkWelcome& welcome) override;
  bool TakeCommand(uint64_t command_id) override;
  void OnAssign(std::vector<proto::AssignedStreamer> streamers) override;
  void OnSwitch(std::string_view url) override;
  void OnManagerLinkEnded(const ManagerLinkEnd& end) override;

  SimContext& ctx_;
  ManagedAgentObserver& observer_;
  SimAgent& gateway_agent_;
  const UrlEndpoint& activation_;
  proto::Digest factory_secret_;
  std::optional<proto::AgentSecret> secret_;
  std::string manager_url_;                // the activation answer's
  std::vector<std::string> manager_urls_;  // the deployment's, from the answer or WELCOME
  size_t manager_index_ = 0;               // position in ManagerOrder() of the next attempt
  uint32_t reconnect_window_ms_ = 0;       // from the last WELCOME
  uint64_t last_command_id_ = 0;
  SimManagerLink link_;
  std::vector<proto::AssignedStreamer> assigned_;
  std::string current_url_;  // the Streamer the gateway connection is pointed at
  uint32_t failures_ = 0;    // attempts in a row that failed (activation or link)
  bool first_activation_pending_ = true;
  bool ever_linked_ = false;
  uint64_t link_lost_ms_ = 0;  // when an established link was lost (0: not relinking)
  bool deactivated_ = false;
  bool stopped_ = false;
  bool retry_activation_ = false;
  bool retry_reactivation_ = false;
  runtime::Timer retry_timer_;
};

}  // namespace camtunnel::agentsim
