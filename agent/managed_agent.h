// The agent's lifecycle under a manager (DESIGN.md "Agent lifecycle", PROTOCOL.md section 10):
// activation at first start (HTTPS POST; the secret is saved atomically before it is used),
// the persistent manager link with backoff (over the deployment's managers in this agent's
// rendezvous order, PROTOCOL.md 10.5), ASSIGN/SWITCH handed to the gateway-facing Agent,
// STATUS up on every gateway connect and loss, DEACTIVATE (wipe the state, exit), RESTART
// (exit for a re-exec), and reactivation when the manager has been unreachable too long.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/agent_state.h"
#include "agent/backoff.h"
#include "agent/config.h"
#include "agent/event_loop.h"
#include "agent/https_exchange.h"
#include "agent/manager_session.h"

namespace camtunnel::agent {

struct ManagedOptions {
  std::string state_file;
  GatewayUrl activation_url;
  std::string serial;
  proto::Digest factory_secret{};
  std::string operator_id;
  int64_t reactivate_after_ms = 600000;  // manager unreachable this long: ask activation again
  int64_t request_deadline_ms = 10000;   // one activation exchange
  int64_t handshake_deadline_ms = 5000;  // manager link: TCP + TLS + 101 + WELCOME
};

struct ManagedStats {
  uint64_t activations = 0;
  uint64_t activation_failures = 0;
  uint64_t reactivations = 0;
  uint64_t manager_links = 0;
  uint64_t manager_link_failures = 0;
  uint64_t manager_failovers = 0;  // an attempt moved on to the next manager of the list
  uint64_t duplicate_commands = 0;
  uint64_t assigns = 0;
};

class ManagedAgent final : public ManagerSession::Delegate {
 public:
  enum class Exit { kRunning, kDeactivated, kRestart };

  ManagedAgent(EventLoop& loop, ManagedOptions options, std::vector<proto::ServiceEntry> services,
               Agent::FactoryMaker make_factory, const AgentOptions& agent_options = {});
  ~ManagedAgent() override;

  void Start();
  void Shutdown();
  Exit exit() const { return exit_; }
  const ManagedStats& stats() const { return stats_; }

  // ManagerSession::Delegate
  void OnManagerWelcome(const proto::LinkWelcome& welcome) override;
  bool TakeCommand(uint64_t command_id) override;
  void OnAssign(std::vector<proto::AssignedStreamer> streamers) override;
  void OnSwitch(std::string_view url) override;
  void OnDeactivate(std::string_view reason) override;
  void OnRestart(std::string_view reason) override;
  void OnManagerLinkEnded(const ManagerLinkEnd& end) override;

 private:
  void Activate(bool reactivation);
  void OnActivationAnswer(bool reactivation, const HttpsResult& result);
  void ConnectManager();
  void RetryLater(int64_t delay_ms, bool activation);
  void OnGatewayLink(const std::string& url, bool connected);
  void RememberStreamers(const std::vector<proto::AssignedStreamer>& streamers);
  // The managers in this agent's order (PROTOCOL.md 10.5): the known list, restricted to the
  // activation URL's scheme, or the activation URL alone.
  std::vector<std::string> ManagerOrder() const;
  void RememberManagers(const std::vector<std::string>& urls);
  void RestoreStreamers();
  void Save();

  EventLoop& loop_;
  ManagedOptions options_;
  std::vector<proto::ServiceEntry> services_;
  Agent::FactoryMaker make_factory_;
  AgentOptions agent_options_;
  Backoff backoff_;
  ManagedStats stats_;
  Exit exit_ = Exit::kRunning;
  bool stopped_ = true;

  std::optional<AgentState> state_;
  ManagerSession::Identity identity_;
  int64_t last_manager_contact_ms_ = 0;     // monotonic; WELCOME or start
  size_t manager_index_ = 0;                // position in ManagerOrder() of the next attempt
  uint32_t reconnect_window_ms_ = 0;        // from the last WELCOME
  int64_t persisted_last_good_unix_s_ = 0;  // last_good_unix_s as the state file holds it

  std::unique_ptr<TransportFactory> activation_factory_;
  std::unique_ptr<HttpsExchange> exchange_;
  std::unique_ptr<TransportFactory> manager_factory_;
  std::unique_ptr<ManagerSession> link_;
  std::unique_ptr<Agent> agent_;
  Timer retry_timer_;
};

}  // namespace camtunnel::agent
