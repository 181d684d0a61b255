// See agent.h.
#include "agent/agent.h"

#include <cerrno>

#include "agent/log.h"
#include "proto/control_frame.h"

namespace camtunnel::agent {
namespace {

uint64_t RandomSeed() {
  uint64_t seed = 0;
  proto::RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&seed), sizeof(seed)));
  return seed;
}

}  // namespace

GatewayTarget MakeGatewayTarget(const GatewayUrl& url, std::shared_ptr<const ProxyConfig> proxy) {
  GatewayTarget target;
  target.proxy = std::move(proxy);
  target.host = url.host;
  target.port = url.port;
  target.url = url.text;
  const bool v6 = url.host.find(':') != std::string::npos;
  target.host_header = v6 ? "[" + url.host + "]" : url.host;
  if (url.port != (url.tls ? 443 : 80)) {
    target.host_header += ":" + std::to_string(url.port);
  }
  return target;
}

Agent::Agent(EventLoop& loop, const Config& config, std::unique_ptr<TransportFactory> factory,
             AgentOptions options)
    : loop_(loop),
      agent_id_(config.agent_id),
      services_(config.services),
      options_(options),
      backoff_(options.backoff, options.seed != 0 ? options.seed : RandomSeed()) {
  auto route = std::make_shared<Route>();
  route->target = MakeGatewayTarget(config.gateway, options.proxy);
  route->factory = std::move(factory);
  route->identity = {config.agent_id, config.key_ref, config.agent_key, config.services};
  routes_.push_back(std::move(route));
}

Agent::Agent(EventLoop& loop, std::string agent_id, std::vector<proto::ServiceEntry> services,
             FactoryMaker make_factory, AgentOptions options)
    : loop_(loop),
      agent_id_(std::move(agent_id)),
      services_(std::move(services)),
      make_factory_(std::move(make_factory)),
      options_(options),
      backoff_(options.backoff, options.seed != 0 ? options.seed : RandomSeed()) {}

Agent::~Agent() { Shutdown(); }

void Agent::Start() {
  stopped_ = false;
  if (!routes_.empty()) {
    Connect();
  }
}

std::string Agent::current_url() const {
  return session_route_ ? session_route_->target.url : std::string();
}

bool Agent::SetStreamers(const std::vector<proto::AssignedStreamer>& streamers) {
  std::vector<std::shared_ptr<Route>> fresh;
  for (const auto& s : streamers) {
    GatewayUrl url;
    std::string error;
    if (!ParseGatewayUrl(s.url, &url, &error)) {
      LOG_WARNING("ASSIGN entry %s skipped: %s", s.url.c_str(), error.c_str());
      continue;
    }
    auto route = std::make_shared<Route>();
    route->target = MakeGatewayTarget(url, options_.proxy);
    route->factory = make_factory_ ? make_factory_(url) : nullptr;
    if (!route->factory) {
      LOG_WARNING("ASSIGN entry %s skipped: no transport for it", s.url.c_str());
      continue;
    }
    route->identity = {agent_id_, s.key_ref, s.agent_key, services_};
    fresh.push_back(std::move(route));
  }
  if (fresh.empty()) {
    return false;
  }
  const std::string current = current_url();
  routes_ = std::move(fresh);
  current_ = 0;
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i]->target.url == current) {
      current_ = i;
    }
  }
  LOG_INFO("streamers assigned: %zu, first %s", routes_.size(),
           routes_.front()->target.url.c_str());
  if (stopped_) {
    return true;
  }
  if (session_ && routes_[current_]->target.url == current) {
    return true;  // still listed: the live session stays, the new key serves what comes next
  }
  // Not connected anywhere listed: go to the first Streamer now.
  current_ = 0;
  Reconnect(0);
  return true;
}

bool Agent::SwitchTo(std::string_view url) {
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i]->target.url == url) {
      current_ = i;
      if (!stopped_ && current_url() != url) {
        LOG_INFO("switching to streamer %s", routes_[i]->target.url.c_str());
        Reconnect(0);
      }
      return true;
    }
  }
  LOG_WARNING("SWITCH to %.*s ignored: not in the assigned list", static_cast<int>(url.size()),
              url.data());
  return false;
}

// Drops the current session (its tunnels go on) and connects to routes_[current_] after
// `delay_ms`.
void Agent::Reconnect(int64_t delay_ms) {
  if (session_) {
    const bool was_up = session_->established();
    session_->Close();
    session_.reset();
    if (observer_ && session_route_ && was_up) {
      observer_(session_route_->target.url, false);
    }
  }
  session_route_.reset();
  reconnect_timer_.Start(loop_, delay_ms, [this] { Connect(); });
}

void Agent::Shutdown() {
  if (!stopped_) {
    LOG_INFO(
        "shutting down: sessions=%llu welcomed=%llu tunnels=%llu open_failed=%llu "
        "bad_gateway_proofs=%llu auth_rejections=%llu",
        static_cast<unsigned long long>(stats_.sessions_started),
        static_cast<unsigned long long>(stats_.sessions_welcomed),
        static_cast<unsigned long long>(stats_.tunnels_opened),
        static_cast<unsigned long long>(stats_.open_failed),
        static_cast<unsigned long long>(stats_.bad_gateway_proofs),
        static_cast<unsigned long long>(stats_.auth_rejections));
  }
  stopped_ = true;
  reconnect_timer_.Cancel();
  if (session_) {
    session_->Close();
    session_.reset();
  }
  session_route_.reset();
  spares_.clear();
  tunnels_.clear();  // each tunnel resets both of its sides and logs its end
}

void Agent::Connect() {
  ++stats_.sessions_started;
  welcome_at_ms_ = -1;
  session_route_ = routes_[current_ % routes_.size()];
  session_ =
      std::make_unique<ControlSession>(loop_, *session_route_->factory, session_route_->target,
                                       session_route_->identity, *this, options_.session);
  session_->Start();
}

void Agent::OnWelcome(const Welcome& welcome) {
  ++stats_.sessions_welcomed;
  welcome_at_ms_ = EventLoop::NowMs();
  reconnect_window_ms_ = welcome.reconnect_window_ms;
  if (welcome.server_time_ms != 0) {
    // Cameras without a real-time clock learn the time here; certificate checks on the next
    // connections use it as a floor.
    RaiseTimeFloor(static_cast<int64_t>(welcome.server_time_ms / 1000));
  }
  if (observer_ && session_route_) {
    observer_(session_route_->target.url, true);
  }
}

void Agent::RaiseTimeFloor(int64_t unix_seconds) {
  for (const auto& route : routes_) {
    route->factory->RaiseTimeFloor(unix_seconds);
  }
}

const proto::ServiceEntry* Agent::FindService(std::string_view name) const {
  for (const auto& entry : services_) {
    if (entry.name == name) {
      return &entry;
    }
  }
  return nullptr;
}

int Agent::CheckOpen(proto::TunnelId id, const proto::ServiceEntry* service,
                     const char** why) const {
  // Only configured services: the gateway can never make the camera dial anywhere else.
  if (service == nullptr) {
    *why = "service not exposed by this agent";
    return EPERM;
  }
  if (tunnels_.count(id) != 0) {
    *why = "tunnel id already in use";
    return EEXIST;
  }
  if (tunnels_.size() >= kMaxTunnels) {
    *why = "too many open tunnels";
    return EMFILE;
  }
  return 0;
}

std::shared_ptr<Route> Agent::DataRoute() const {
  // The newest key for this Streamer: a session can outlive the key it started with (the
  // manager refreshes keys before they expire), and a data connection proves itself afresh.
  std::shared_ptr<Route> route = session_route_;
  for (const auto& r : routes_) {
    if (r->target.url == route->target.url) {
      route = r;
    }
  }
  return route;
}

GatewayTarget Agent::DataTarget(const Route& route) const {
  // The data connection goes to the very address the control connection reached: a name with
  // several addresses (DNS round robin over gateways, or IPv6 and IPv4) looked up again could
  // lead to another gateway, which knows nothing of this tunnel. Through a proxy the proxy
  // resolves (and the socket's peer is the proxy): the name is kept.
  GatewayTarget target = route.target;
  if (!target.proxy && session_) {
    if (std::string host = session_->peer_host(); !host.empty()) {
      target.host = std::move(host);
    }
  }
  return target;
}

Tunnel* Agent::AddTunnel(std::shared_ptr<Route> route, proto::TunnelId id,
                         const proto::ServiceEntry& service, const proto::Nonce& nonce,
                         bool on_spare) {
  ++stats_.tunnels_opened;
  Tunnel::Callbacks callbacks{
      .open_failed =
          [this, on_spare](proto::TunnelId failed, int error, const std::string& text) {
            ++stats_.open_failed;
            if (!on_spare && session_) {  // a spare's tunnel answers on the spare itself
              session_->SendOpenFailed(failed, error, text);
            }
          },
      .finished = [this](proto::TunnelId done) { tunnels_.erase(done); },
  };
  auto tunnel =
      std::make_unique<Tunnel>(loop_, *route->factory, DataTarget(*route), route->identity, id,
                               service, nonce, std::move(callbacks), options_.tunnel);
  Tunnel* raw = tunnel.get();
  tunnels_.emplace(id, TunnelEntry{std::move(route), std::move(tunnel)});
  return raw;
}

void Agent::OnOpen(proto::TunnelId id, std::string_view service_name, const proto::Nonce& nonce) {
  const proto::ServiceEntry* service = FindService(service_name);
  const char* why = "";
  if (const int error = CheckOpen(id, service, &why); error != 0) {
    ++stats_.open_failed;
    LOG_WARNING("tunnel %s service=%.*s refused: %s", proto::FormatTunnelId(id).c_str(),
                static_cast<int>(service_name.size()), service_name.data(), why);
    session_->SendOpenFailed(id, error, why);
    return;
  }
  AddTunnel(DataRoute(), id, *service, nonce, false)->Start();
}

void Agent::OnSpare(proto::TunnelId id, const proto::Nonce& nonce) {
  // A spare is one more descriptor and TLS connection: a few at most, and none past the
  // tunnel limit. An unanswered SPARE simply expires at the gateway (PROTOCOL.md 8.1).
  if (spares_.size() >= kMaxSpares || spares_.count(id) != 0 ||
      tunnels_.size() + spares_.size() >= kMaxTunnels) {
    LOG_DEBUG("spare %s ignored: %zu spares, %zu tunnels", proto::FormatTunnelId(id).c_str(),
              spares_.size(), tunnels_.size());
    return;
  }
  std::shared_ptr<Route> route = DataRoute();
  SpareConnection::Callbacks callbacks{
      .open =
          [this, id, route](proto::TunnelId tunnel, const std::string& service,
                            std::unique_ptr<Transport> connection, std::span<const uint8_t> rest) {
            OnSpareOpen(route, tunnel, service, std::move(connection), rest);
            spares_.erase(id);  // last: this destroys the caller
          },
      .ended =
          [this, id](const std::string& why) {
            LOG_DEBUG("spare %s ended: %s", proto::FormatTunnelId(id).c_str(), why.c_str());
            spares_.erase(id);
          },
  };
  auto spare = std::make_unique<SpareConnection>(loop_, *route->factory, DataTarget(*route),
                                                 route->identity, id, nonce, std::move(callbacks),
                                                 options_.tunnel.data_connect_deadline_ms);
  SpareConnection* raw = spare.get();
  spares_.emplace(id, SpareEntry{std::move(route), std::move(spare)});
  raw->Start();
}

void Agent::OnSpareOpen(std::shared_ptr<Route> route, proto::TunnelId id,
                        const std::string& service_name, std::unique_ptr<Transport> connection,
                        std::span<const uint8_t> rest) {
  const proto::ServiceEntry* service = FindService(service_name);
  const char* why = "";
  if (const int error = CheckOpen(id, service, &why); error != 0) {
    ++stats_.open_failed;
    LOG_WARNING("tunnel %s service=%s refused on a spare: %s", proto::FormatTunnelId(id).c_str(),
                service_name.c_str(), why);
    proto::FrameBuilder failed(proto::FrameType::kOpenFailed);
    failed.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id))
        .AddU32(proto::Tag::kErrno, static_cast<uint32_t>(error))
        .AddText(proto::Tag::kText, why);
    const std::vector<uint8_t> frame = failed.Finish();
    size_t written = 0;
    connection->Write(frame, &written);  // best effort on an idle connection; then closed
    connection->ShutdownWrite();
    return;
  }
  // The OPEN nonce proves nothing on a spare (the connection is proven already).
  AddTunnel(std::move(route), id, *service, proto::Nonce{}, true)
      ->StartOnSpare(std::move(connection), rest);
}

// Pacing after a session ends (DESIGN.md "Agent lifecycle", PROTOCOL.md section 6):
// - a healthy session (WELCOME, then > 60 s) resets the backoff, and the first attempt waits
//   uniform [0, reconnect_window_ms) so a restarted gateway is not hit by its fleet at once;
// - a short session also waits that window, but at least a backoff step, so a gateway that
//   welcomes and drops at once is not hammered;
// - GOAWAY's hint replaces the window; 503's Retry-After is a floor;
// - 401/403 and a bad gateway proof will not heal by themselves: back off at the cap.
int64_t Agent::ReconnectDelayMs(const SessionEnd& end) {
  using Reason = SessionEnd::Reason;
  if (end.reason == Reason::kAuthRejected || end.reason == Reason::kBadGatewayProof) {
    backoff_.JumpToCap();
    return backoff_.NextDelayMs();
  }
  if (end.welcomed) {
    const int64_t lasted = EventLoop::NowMs() - welcome_at_ms_;
    int64_t delay = backoff_.UniformMs(reconnect_window_ms_);
    if (end.reason == Reason::kGoaway && end.retry_after_ms > 0) {
      delay = end.retry_after_ms;
    }
    if (lasted > kHealthySessionMs) {
      backoff_.Reset();
      return delay;
    }
    return std::max(delay, backoff_.NextDelayMs());
  }
  int64_t delay = backoff_.NextDelayMs();
  if (end.retry_after_ms > 0) {
    delay = std::max(delay, end.retry_after_ms);
  }
  return delay;
}

void Agent::OnSessionEnded(const SessionEnd& end) {
  using Reason = SessionEnd::Reason;
  session_.reset();  // the session reports from its own timer and touches nothing after this
  spares_.clear();   // they belong to that session's gateway (PROTOCOL.md 8.1)
  if (observer_ && session_route_ && end.welcomed) {
    observer_(session_route_->target.url, false);
  }
  session_route_.reset();
  if (stopped_) {
    return;
  }
  const int64_t delay = ReconnectDelayMs(end);
  // A Streamer that did not even welcome us is passed over for the next one of the list (a
  // stopped gateway still completes TCP handshakes: only the handshake deadline shows it). A
  // session that was up gets one more try at the same Streamer first.
  if (!end.welcomed && routes_.size() > 1) {
    current_ = (current_ + 1) % routes_.size();
    ++stats_.failovers;
    LOG_WARNING("failing over to streamer %s", routes_[current_]->target.url.c_str());
  }
  switch (end.reason) {
    case Reason::kAuthRejected:
      ++stats_.auth_rejections;
      LOG_ERROR(
          "gateway rejected this agent (%s): the key (--key_file/--key_ref) or the scheme "
          "is wrong; retrying in %lld ms",
          end.detail.c_str(), static_cast<long long>(delay));
      break;
    case Reason::kBadGatewayProof:
      ++stats_.bad_gateway_proofs;
      LOG_ERROR(
          "%s; closed without sending HELLO (bad gateway proofs so far: %llu); retrying in "
          "%lld ms",
          end.detail.c_str(), static_cast<unsigned long long>(stats_.bad_gateway_proofs),
          static_cast<long long>(delay));
      break;
    default:
      LOG_WARNING("control session ended (%s%s): %s; reconnecting in %lld ms",
                  std::string(SessionEndName(end.reason)).c_str(),
                  end.welcomed ? "" : ", before WELCOME", end.detail.c_str(),
                  static_cast<long long>(delay));
      break;
  }
  reconnect_timer_.Start(loop_, delay, [this] { Connect(); });
}

}  // namespace camtunnel::agent
