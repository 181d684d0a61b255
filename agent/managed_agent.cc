// See managed_agent.h.
#include "agent/managed_agent.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "agent/cert_time.h"
#include "agent/log.h"
#include "proto/activation_message.h"
#include "proto/manager_order.h"

namespace camtunnel::agent {
namespace {

uint64_t Seed() {
  uint64_t seed = 0;
  proto::RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&seed), sizeof(seed)));
  return seed;
}

// last_good_unix_s is a floor, not a clock: writing it more often than hourly only wears flash.
constexpr int64_t kLastGoodSaveEvery = 3600;

}  // namespace

ManagedAgent::ManagedAgent(EventLoop& loop, ManagedOptions options,
                           std::vector<proto::ServiceEntry> services,
                           Agent::FactoryMaker make_factory, const AgentOptions& agent_options)
    : loop_(loop),
      options_(std::move(options)),
      services_(std::move(services)),
      make_factory_(std::move(make_factory)),
      agent_options_(agent_options),
      backoff_(agent_options.backoff, agent_options.seed != 0 ? agent_options.seed : Seed()) {}

ManagedAgent::~ManagedAgent() {
  Shutdown();
  OPENSSL_cleanse(identity_.secret.data(), identity_.secret.size());
  OPENSSL_cleanse(options_.factory_secret.data(), options_.factory_secret.size());
}

void ManagedAgent::Start() {
  stopped_ = false;
  last_manager_contact_ms_ = EventLoop::NowMs();
  std::string error;
  state_ = LoadAgentState(options_.state_file, &error);
  persisted_last_good_unix_s_ = state_ ? state_->last_good_unix_s : 0;
  if (!error.empty()) {
    // Never guess: an unreadable state means this camera must be activated again (and the
    // manager will refuse that without the old secret, which an operator then resolves).
    LOG_ERROR("%s; activating again", error.c_str());
  }
  if (state_) {
    LOG_INFO("state loaded agent=%s manager=%s", state_->agent_id.c_str(),
             state_->manager_url.c_str());
    ConnectManager();
  } else {
    Activate(false);
  }
}

void ManagedAgent::Shutdown() {
  stopped_ = true;
  retry_timer_.Cancel();
  exchange_.reset();
  if (link_) {
    link_->Close();
    link_.reset();
  }
  if (agent_) {
    agent_->Shutdown();
  }
}

void ManagedAgent::Activate(bool reactivation) {
  if (!activation_factory_) {
    activation_factory_ = make_factory_(options_.activation_url);
    if (!activation_factory_) {
      LOG_ERROR("cannot set up TLS for the activation server %s",
                options_.activation_url.text.c_str());
      RetryLater(backoff_.NextDelayMs(), true);
      return;
    }
  }
  if (state_) {
    // Reactivation: the camera knows a better floor than its build time (cert_time.h).
    activation_factory_->RaiseTimeFloor(state_->last_good_unix_s);
  }
  std::optional<proto::Digest> proof;
  if (reactivation && state_) {
    proof = proto::ReactivationProof(state_->secret, state_->agent_id);
  }
  const std::string body = proto::BuildActivationBody(
      options_.serial, options_.factory_secret, options_.operator_id, proof ? &*proof : nullptr);
  const GatewayTarget target = MakeGatewayTarget(options_.activation_url, agent_options_.proxy);
  std::string request = "POST " + std::string(proto::kActivatePath) +
                        " HTTP/1.1\r\nHost: " + target.host_header +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  LOG_INFO("%s at %s serial=%s", reactivation ? "reactivating" : "activating",
           options_.activation_url.text.c_str(), options_.serial.c_str());
  exchange_ = std::make_unique<HttpsExchange>(loop_, *activation_factory_, target);
  exchange_->Start(std::move(request), options_.request_deadline_ms,
                   [this, reactivation](const HttpsResult& result) {
                     OnActivationAnswer(reactivation, result);
                   });
}

void ManagedAgent::OnActivationAnswer(bool reactivation, const HttpsResult& result) {
  exchange_.reset();  // called last by the exchange: safe
  if (!result.ok) {
    ++stats_.activation_failures;
    const int64_t delay = backoff_.NextDelayMs();
    LOG_WARNING("activation failed: %s; retrying in %lld ms", result.error.c_str(),
                static_cast<long long>(delay));
    // A reactivation that fails sends us back to trying the manager we know.
    RetryLater(delay, !reactivation);
    return;
  }
  if (result.status != 200) {
    ++stats_.activation_failures;
    // 401/403/409 will not heal by retrying soon: a wrong factory secret, an unknown operator,
    // or a serial already active elsewhere (this camera lost its state). Back off at the cap.
    if (result.status == 401 || result.status == 403 || result.status == 409) {
      backoff_.JumpToCap();
    }
    int64_t delay = backoff_.NextDelayMs();
    if (result.retry_after_ms > delay) {
      delay = result.retry_after_ms;
    }
    LOG_ERROR("activation refused: HTTP %d %s; retrying in %lld ms", result.status,
              result.body.substr(0, 200).c_str(), static_cast<long long>(delay));
    RetryLater(delay, !reactivation);
    return;
  }
  std::string error;
  auto parsed = proto::ParseActivationResult(result.body, &error);
  if (!parsed || parsed->agent_id != options_.serial || (!reactivation && !parsed->agent_secret)) {
    ++stats_.activation_failures;
    LOG_ERROR("activation answer unusable: %s",
              parsed ? "wrong agent id or no secret" : error.c_str());
    RetryLater(backoff_.NextDelayMs(), true);
    return;
  }
  // A secret in the answer to a reactivation means the managers' database no longer had this
  // agent active (it lost the activation in a failover, or went back to an older backup): the
  // held secret is void, and with it all that was kept under it (sealed keys, the last command
  // id). The agent starts over as on its first activation.
  const bool kept = reactivation && state_ && !parsed->agent_secret;
  if (kept) {
    if (parsed->manager_url.empty()) {
      ++stats_.activation_failures;
      LOG_ERROR("reactivation answer unusable: %s", parsed->manager_url_problem.c_str());
      RetryLater(backoff_.NextDelayMs(), false);
      return;
    }
    ++stats_.reactivations;
    state_->manager_url = parsed->manager_url;
    state_->manager_urls = parsed->manager_urls;
  } else {
    ++stats_.activations;
    int64_t last_good_unix_s = ClockUnixS();
    if (state_) {
      LOG_WARNING("the activation server issued a new secret: the old one is void");
      last_good_unix_s = std::max(last_good_unix_s, state_->last_good_unix_s);
      OPENSSL_cleanse(state_->secret.data(), state_->secret.size());
    }
    state_ = AgentState{.agent_id = parsed->agent_id,
                        .manager_url = parsed->manager_url,
                        .secret = *parsed->agent_secret,
                        // The clock as it is (0 in 1970 adds nothing; a camera that had a
                        // better floor keeps it): the manager's WELCOME raises it right after.
                        .last_good_unix_s = last_good_unix_s,
                        .manager_urls = parsed->manager_urls};
    persisted_last_good_unix_s_ = state_->last_good_unix_s;
    OPENSSL_cleanse(parsed->agent_secret->data(), parsed->agent_secret->size());
  }
  // Saved before first use, and before the rest of the answer is judged: a secret the camera
  // forgets would lock it out for good (the serial is activated; only the secret's holder may
  // reactivate it).
  if (!SaveAgentState(options_.state_file, *state_, &error)) {
    LOG_ERROR("%s", error.c_str());
  }
  if (state_->manager_url.empty()) {
    ++stats_.activation_failures;
    const int64_t delay = backoff_.NextDelayMs();
    LOG_ERROR("activation answer has no usable manager: %s; secret kept, reactivating in %lld ms",
              parsed->manager_url_problem.c_str(), static_cast<long long>(delay));
    RetryLater(delay, true);
    return;
  }
  LOG_INFO("%s agent=%s manager=%s", kept ? "reactivated" : "activated", state_->agent_id.c_str(),
           state_->manager_url.c_str());
  if (!kept) {
    backoff_.Reset();
  }
  last_manager_contact_ms_ = EventLoop::NowMs();
  manager_index_ = 0;
  ConnectManager();
}

std::vector<std::string> ManagedAgent::ManagerOrder() const {
  if (!state_ || state_->manager_url.empty()) {
    return {};
  }
  const std::string scheme = state_->manager_url.substr(0, state_->manager_url.find(':') + 1);
  std::vector<std::string> usable;
  for (const std::string& url : state_->manager_urls) {
    if (url.starts_with(scheme)) {
      usable.push_back(url);
    }
  }
  if (usable.empty()) {
    return {state_->manager_url};
  }
  return proto::OrderManagers(state_->agent_id, usable);
}

void ManagedAgent::RememberManagers(const std::vector<std::string>& urls) {
  if (!state_ || urls.empty() || urls == state_->manager_urls) {
    return;
  }
  state_->manager_urls = urls;
  Save();
}

void ManagedAgent::ConnectManager() {
  if (stopped_ || !state_) {
    return;
  }
  const std::vector<std::string> order = ManagerOrder();
  const std::string target =
      order.empty() ? state_->manager_url : order[manager_index_ % order.size()];
  GatewayUrl url;
  std::string error;
  if (!ParseGatewayUrl(target, &url, &error)) {
    LOG_ERROR("manager URL %s unusable (%s); activating again", target.c_str(), error.c_str());
    Activate(true);
    return;
  }
  if (!url.tls) {
    // The manager chose plain (PROTOCOL.md section 10.2); the URL came from the activation
    // server over HTTPS, so nobody on the path picked it. Frames are MACed, keys sealed.
    LOG_WARNING("plain manager link %s: frames are MACed but travel unencrypted", target.c_str());
  }
  identity_.agent_id = state_->agent_id;
  identity_.secret = state_->secret;
  // Plain needs no trust settings (the proofs and MACs carry the authentication); asking the
  // maker would log this URL as a plain Streamer.
  manager_factory_ = url.tls ? make_factory_(url) : MakePlainTransportFactory();
  if (!manager_factory_) {
    RetryLater(backoff_.NextDelayMs(), false);
    return;
  }
  manager_factory_->RaiseTimeFloor(state_->last_good_unix_s);
  if (!agent_) {
    // Every Streamer's TLS checks start from the last time this camera knew to be good (it may
    // have no real-time clock).
    Agent::FactoryMaker maker = [this](const GatewayUrl& u) {
      std::unique_ptr<TransportFactory> f = make_factory_(u);
      if (f && state_) {
        f->RaiseTimeFloor(state_->last_good_unix_s);
      }
      return f;
    };
    agent_ = std::make_unique<Agent>(loop_, state_->agent_id, services_, std::move(maker),
                                     agent_options_);
    agent_->set_link_observer(
        [this](const std::string& u, bool connected) { OnGatewayLink(u, connected); });
    agent_->Start();
    RestoreStreamers();
  }
  link_ = std::make_unique<ManagerSession>(loop_, *manager_factory_,
                                           MakeGatewayTarget(url, agent_options_.proxy), identity_,
                                           *this, options_.handshake_deadline_ms);
  link_->Start();
}

void ManagedAgent::RetryLater(int64_t delay_ms, bool activation) {
  if (stopped_) {
    return;
  }
  retry_timer_.Start(loop_, delay_ms, [this, activation] {
    if (activation) {
      Activate(state_.has_value());
    } else {
      ConnectManager();
    }
  });
}

bool ManagedAgent::TakeCommand(uint64_t command_id) {
  if (!state_) {
    return false;
  }
  if (command_id <= state_->last_command_id) {
    ++stats_.duplicate_commands;
    return false;
  }
  // Written before the command is acted on: a RESTART delivered again after the re-exec (its
  // ACK lost with the link) finds it done.
  state_->last_command_id = command_id;
  Save();
  return true;
}

void ManagedAgent::OnManagerWelcome(const proto::LinkWelcome& welcome) {
  const uint64_t server_time_ms = welcome.server_time_ms;
  ++stats_.manager_links;
  backoff_.Reset();
  last_manager_contact_ms_ = EventLoop::NowMs();
  reconnect_window_ms_ = welcome.reconnect_window_ms;
  RememberManagers(welcome.managers);
  // The manager's clock, over a link whose certificate and proof were verified: the camera's
  // best knowledge of the time. Every later TLS check starts from it; it is written to the state
  // file (for the next boot without a clock) when it moved by an hour or more.
  const int64_t now_s = server_time_ms != 0 ? static_cast<int64_t>(server_time_ms / 1000) : 0;
  if (now_s > 0 && state_ && now_s > state_->last_good_unix_s) {
    state_->last_good_unix_s = now_s;
    if (manager_factory_) {
      manager_factory_->RaiseTimeFloor(now_s);
    }
    if (agent_) {
      agent_->RaiseTimeFloor(now_s);
    }
    if (now_s - persisted_last_good_unix_s_ >= kLastGoodSaveEvery) {
      Save();
    }
  }
  if (link_ && agent_ && !agent_->current_url().empty()) {
    link_->SendStatus("streamer=" + agent_->current_url() + " state=connected");
  }
}

void ManagedAgent::OnAssign(std::vector<proto::AssignedStreamer> streamers) {
  ++stats_.assigns;
  last_manager_contact_ms_ = EventLoop::NowMs();
  if (!agent_ || !agent_->SetStreamers(streamers)) {
    LOG_WARNING("ASSIGN without a usable Streamer; keeping the previous list");
  } else {
    RememberStreamers(streamers);
  }
  for (auto& s : streamers) {
    OPENSSL_cleanse(s.agent_key.data(), s.agent_key.size());
  }
}

void ManagedAgent::OnSwitch(std::string_view url) {
  if (agent_) {
    agent_->SwitchTo(url);
  }
}

void ManagedAgent::OnDeactivate(std::string_view reason) {
  LOG_WARNING("deactivated by the manager (%.*s): wiping state and exiting",
              static_cast<int>(reason.size()), reason.data());
  std::string error;
  if (!WipeAgentState(options_.state_file, &error)) {
    LOG_ERROR("%s", error.c_str());
  }
  if (state_) {
    OPENSSL_cleanse(state_->secret.data(), state_->secret.size());
    state_.reset();
  }
  exit_ = Exit::kDeactivated;
  loop_.Stop();
}

void ManagedAgent::OnRestart(std::string_view reason) {
  LOG_WARNING("restart requested by the manager (%.*s)", static_cast<int>(reason.size()),
              reason.data());
  exit_ = Exit::kRestart;
  loop_.Stop();
}

void ManagedAgent::OnManagerLinkEnded(const ManagerLinkEnd& end) {
  link_.reset();
  if (stopped_ || end.reason == ManagerLinkEnd::Reason::kCommand) {
    return;
  }
  ++stats_.manager_link_failures;
  if (end.reason == ManagerLinkEnd::Reason::kRejected) {
    // 401/403 to the upgrade: the managers' database does not have this agent active. Back to
    // activation with the factory secret and the proof of the secret held (PROTOCOL.md 10.2):
    // a fresh secret if the database lost the agent, 403 if it was deactivated while away.
    // Only a fresh secret or a WELCOME resets the backoff, so a refusal that repeats slows
    // down to the cap instead of looping.
    const int64_t delay = backoff_.NextDelayMs();
    LOG_WARNING("manager link refused (%s); activating again in %lld ms", end.detail.c_str(),
                static_cast<long long>(delay));
    RetryLater(delay, true);
    return;
  }
  const int64_t silent_ms = EventLoop::NowMs() - last_manager_contact_ms_;
  if (silent_ms >= options_.reactivate_after_ms) {
    LOG_WARNING("manager unreachable for %lld ms (%s): asking the activation server",
                static_cast<long long>(silent_ms), end.detail.c_str());
    last_manager_contact_ms_ = EventLoop::NowMs();  // one reactivation per period
    Activate(true);
    return;
  }
  if (end.reason != ManagerLinkEnd::Reason::kFailed) {
    backoff_.JumpToCap();
  }
  const size_t managers = ManagerOrder().size();
  int64_t delay = 0;
  if (end.welcomed) {
    // A link that worked ended, after a random share of the manager's reconnect window so its
    // fleet does not return at once (PROTOCOL.md section 6). A manager that closed the link (it
    // stopped, or restarts): the first choice again. One that fell silent (stopped, hung, cut
    // off): the next of the order, not a dead end first (PROTOCOL.md 10.5).
    manager_index_ = end.silent && managers > 1 ? (manager_index_ + 1) % managers : 0;
    delay = reconnect_window_ms_ > 0 ? backoff_.UniformMs(reconnect_window_ms_)
                                     : backoff_.NextDelayMs();
  } else if (end.reason == ManagerLinkEnd::Reason::kFailed && managers > 1 &&
             (manager_index_ + 1) % managers != 0) {
    // Unreachable, busy or failing: the next manager in this agent's order, at once but for
    // a little jitter; the backoff applies once the whole list has failed.
    ++manager_index_;
    ++stats_.manager_failovers;
    delay = backoff_.UniformMs(250);
  } else {
    manager_index_ = 0;
    delay = backoff_.NextDelayMs();
  }
  LOG_WARNING("manager link ended (%s); reconnecting in %lld ms", end.detail.c_str(),
              static_cast<long long>(delay));
  RetryLater(delay, false);
}

void ManagedAgent::OnGatewayLink(const std::string& url, bool connected) {
  if (connected && state_ && state_->last_streamer != url) {
    state_->last_streamer = url;
    Save();
  }
  if (link_) {
    link_->SendStatus("streamer=" + url + (connected ? " state=connected" : " state=lost"));
  }
}

void ManagedAgent::RememberStreamers(const std::vector<proto::AssignedStreamer>& streamers) {
  if (!state_) {
    return;
  }
  const proto::Digest seal = proto::KeySealKey(state_->secret, state_->agent_id);
  state_->sealed_streamers.clear();
  for (const auto& s : streamers) {
    uint8_t nonce[proto::kSealNonceBytes];
    proto::RandomBytes(nonce);
    state_->sealed_streamers.push_back(
        proto::EncodeAssignedStreamer(seal, state_->agent_id, s, nonce));
  }
  Save();
}

// A restarted camera goes back to its last Streamers at once, without waiting for the manager;
// entries whose key has expired are left out (the gateway would refuse them anyway).
void ManagedAgent::RestoreStreamers() {
  if (!state_ || state_->sealed_streamers.empty()) {
    return;
  }
  const proto::Digest seal = proto::KeySealKey(state_->secret, state_->agent_id);
  std::vector<proto::AssignedStreamer> list;
  for (const auto& sealed : state_->sealed_streamers) {
    proto::StreamerFieldParse parsed =
        proto::DecodeAssignedStreamer(seal, state_->agent_id, sealed);
    const int64_t now =
        CertificateCheckTime(ClockUnixS(), BuildTimeUnixS(), state_->last_good_unix_s);
    if (parsed.streamer && static_cast<int64_t>(parsed.streamer->key_ref.expiry) > now) {
      list.push_back(std::move(*parsed.streamer));
    }
  }
  if (!list.empty() && agent_->SetStreamers(list)) {
    LOG_INFO("restored %zu streamers from the state file", list.size());
  }
  for (auto& s : list) {
    OPENSSL_cleanse(s.agent_key.data(), s.agent_key.size());
  }
}

void ManagedAgent::Save() {
  std::string error;
  if (!state_) {
    return;
  }
  if (SaveAgentState(options_.state_file, *state_, &error)) {
    persisted_last_good_unix_s_ = state_->last_good_unix_s;
  } else {
    LOG_ERROR("%s", error.c_str());
  }
}

}  // namespace camtunnel::agent
