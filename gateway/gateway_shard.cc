#include "gateway/gateway_shard.h"

#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <string>

#include "gateway/admin/admin_routes.h"
#include "gateway/agent_handshake.h"
#include "gateway/control_session.h"
#include "gateway/frontend_connection.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "runtime/stream.h"

namespace camtunnel::gateway {
namespace {

// How often a drain looks whether the last tunnel has finished.
constexpr uint64_t kDrainPollMs = 100;

}  // namespace

GatewayShard::GatewayShard(runtime::Shard& shard, GatewayConfig config, StreamerKeys keys,
                           Gateway* gateway)
    : shard_(shard),
      gateway_(gateway),
      config_(std::move(config)),
      keys_(std::move(keys)),
      ticket_keys_(gateway != nullptr ? gateway->ticket_keys()
                                      : std::shared_ptr(runtime::TicketKeys::Generate())) {
  UpdateControlLinkProfile();
  route_config_.host_suffix = config_.host_suffix;
  // The configuration was checked (ResolveConfig) before it got here: the list parses.
  if (auto allow = SourceAllowlist::Parse(config_.frontend_allow); allow.ok()) {
    frontend_allow_ = std::move(*allow);
  }
  drain_timer_.set_callback([this] { CheckDrained(); });
  admin_server_ = admin::MakeAdminServer(*this);
}

GatewayShard::~GatewayShard() = default;

void GatewayShard::UpdateControlLinkProfile() {
  control_link_profile_ = {
      .role = proto::LinkRole::kServer,
      .kind = proto::LinkKind::kGateway,
      .capabilities = proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno | proto::kCapSpareData,
      .heartbeat_ms = config_.heartbeat_ms,
      .heartbeat_misses = config_.heartbeat_misses,
      .reconnect_window_ms = config_.reconnect_window_ms};
}

absl::Status GatewayShard::Listen(const std::vector<std::string>& addresses, bool exclusive,
                                  std::vector<std::unique_ptr<runtime::Listener>>* out,
                                  const runtime::Listener::AcceptFn& fn,
                                  const runtime::AcceptBudget& budget) {
  for (const std::string& a : addresses) {
    auto l = runtime::Listener::Open(shard_, a, fn, exclusive, budget);
    if (!l.ok()) {
      return l.status();
    }
    out->push_back(std::move(*l));
  }
  return absl::OkStatus();
}

// Every shard loads the same file into the one shared key set: the same keys each time, so the
// order in which shards (re)load does not matter. Without a file the keys made at start-up stay.
absl::Status GatewayShard::LoadTicketKeys(const std::string& file) {
  if (file.empty()) {
    return absl::OkStatus();
  }
  auto loaded = runtime::TicketKeys::LoadFile(file);
  if (loaded.ok()) {
    ticket_keys_->Replace(*(*loaded)->snapshot());  // SIGHUP after a rotation
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(loaded.status())) {
    return loaded.status();
  }
  // First start: make the file, so the next start resumes the tickets issued now. Shards start
  // one after the other, so only the first gets here.
  auto fresh = runtime::TicketKeys::Generate();
  if (absl::Status s = fresh->SaveFile(file); !s.ok()) {
    return s;
  }
  runtime::LogEvent(runtime::LogLevel::kInfo, "ticket_keys_created", {runtime::Kv("file", file)});
  ticket_keys_->Replace(*fresh->snapshot());
  return absl::OkStatus();
}

void GatewayShard::OfferKernelTls(SSL_CTX* ctx, const GatewayConfig& config) const {
  // Only where the probe found kTLS: elsewhere OpenSSL would ask every connection's BIO in
  // vain. Each connection's socket is asked again when its keys are offered.
  if (ktls_.available && config.kernel_tls) {
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
  }
}

void GatewayShard::ApplyHandshakeBudget() {
  // Only the TLS port: a full handshake is ~230 us of CPU, a plain one a few microseconds.
  for (auto& l : agent_tls_listeners_) {
    l->set_accept_budget({config_.agent_handshakes_per_second, config_.agent_handshake_burst});
  }
}

absl::Status GatewayShard::Start(const GatewayConfig* bound) {
  if (bound == nullptr) {
    ktls_ = runtime::ProbeKernelTls();
    runtime::LogEvent(runtime::LogLevel::kInfo, "ktls_probe",
                      {runtime::Kv("available", ktls_.available ? "yes" : "no"),
                       runtime::Kv("detail", ktls_.detail)});
  } else {
    // One probe per process: the kernel is the same for every shard.
    ktls_ = gateway_->shard(0).ktls_;
    if (!config_.takeover) {  // a takeover's agent listeners are not bound yet
      config_.agent_tls_listen = bound->agent_tls_listen;
      config_.agent_plain_listen = bound->agent_plain_listen;
    }
    config_.frontend_listen = bound->frontend_listen;
  }
  if (!config_.cert_file.empty()) {
    auto ctx = runtime::CreateServerContext({config_.cert_file, config_.key_file}, libctx_.get());
    if (!ctx.ok()) {
      return ctx.status();
    }
    if (absl::Status s = LoadTicketKeys(config_.ticket_keys_file); !s.ok()) {
      return s;
    }
    ticket_keys_->Install(ctx->get());
    OfferKernelTls(ctx->get(), config_);
    tls_ctx_ = std::move(*ctx);
  } else if (!config_.agent_tls_listen.empty()) {
    return absl::InvalidArgumentError("a TLS agent listener needs a certificate and key");
  }
  // A takeover joins the old process's frontend (and admin) listeners at once, so media
  // requests always find one (connections queued at the old one move over when it closes:
  // net.ipv4.tcp_migrate_req). Its agent listeners open only once the old process has closed
  // its own (it drains): until then every agent connection, data connections for the old
  // process's tunnels included, reaches the process that knows it.
  const bool first = bound == nullptr;
  const bool exclusive = first && !config_.takeover;
  takeover_until_ms_ = runtime::MonotonicMs() + config_.takeover_window_ms;
  absl::Status s;
  if (first) {
    // Admin first: /readyz answers 503 until every other listener is up. Only the first shard
    // serves it; requests about other shards' agents are handed to them.
    s = Listen(config_.admin_listen, exclusive, &admin_listeners_,
               [this](int fd) { AcceptAdmin(fd); });
  }
  if (s.ok() && !config_.takeover) {
    s = OpenAgentListeners(exclusive);
  }
  if (s.ok()) {
    s = Listen(config_.frontend_listen, exclusive, &frontend_listeners_,
               [this](int fd) { AcceptFrontend(fd); });
  }
  started_ = s.ok();
  if (started_ && first && config_.takeover) {
    runtime::LogEvent(
        runtime::LogLevel::kInfo, "takeover_waiting",
        {runtime::Kv("detail", "agent listeners open once the running gateway closes its own")});
    takeover_timer_.set_callback([this] { AwaitAgentPorts(); });
    AwaitAgentPorts();
  }
  return s;
}

absl::Status GatewayShard::OpenAgentListeners(bool exclusive) {
  // Paced from the first accept: a budget set on a running multishot accept must cancel it
  // first, and a cancel in the same submission as the accept can miss it.
  absl::Status s = Listen(config_.agent_tls_listen, exclusive, &agent_tls_listeners_,
                          [this](int fd) { AcceptAgent(fd, true); },
                          {config_.agent_handshakes_per_second, config_.agent_handshake_burst});
  if (s.ok()) {
    s = Listen(config_.agent_plain_listen, exclusive, &agent_plain_listeners_,
               [this](int fd) { AcceptAgent(fd, false); });
  }
  return s;
}

void GatewayShard::AwaitAgentPorts() {
  if (draining_) {
    return;  // drained before it ever took over
  }
  for (const auto* list : {&config_.agent_tls_listen, &config_.agent_plain_listen}) {
    for (const std::string& address : *list) {
      if (!runtime::Listener::PortFree(address)) {
        shard_.timers().Arm(takeover_timer_, shard_.now_ms(), kTakeoverPollMs);
        return;
      }
    }
  }
  // This shard binds first; the others join its listeners.
  absl::Status s = OpenAgentListeners(false);
  for (unsigned i = 1; s.ok() && i < shard_count(); ++i) {
    const bool sent = PostTo(i, [](GatewayShard& gw) {
      if (absl::Status opened = gw.OpenAgentListeners(false); !opened.ok()) {
        runtime::LogEvent(runtime::LogLevel::kError, "takeover_failed",
                          {runtime::Kv("error", opened.message())});
      }
    });
    if (!sent) {
      s = absl::ResourceExhaustedError("shard queue full");
    }
  }
  runtime::LogEvent(s.ok() ? runtime::LogLevel::kInfo : runtime::LogLevel::kError,
                    "takeover_agent_listeners",
                    {runtime::Kv("result", s.ok() ? "open" : s.message())});
}

namespace {

// "host:port" with the port replaced (IPv6 hosts keep their brackets).
std::string WithPort(const std::string& address, uint16_t port) {
  return address.substr(0, address.rfind(':') + 1) + std::to_string(port);
}

void ResolvePorts(const std::vector<std::unique_ptr<runtime::Listener>>& listeners,
                  std::vector<std::string>* addresses) {
  addresses->clear();
  for (const auto& l : listeners) {
    addresses->push_back(WithPort(l->address(), l->port()));
  }
}

}  // namespace

GatewayConfig GatewayShard::BoundListeners() const {
  GatewayConfig c;
  ResolvePorts(agent_tls_listeners_, &c.agent_tls_listen);
  ResolvePorts(agent_plain_listeners_, &c.agent_plain_listen);
  ResolvePorts(frontend_listeners_, &c.frontend_listen);
  ResolvePorts(admin_listeners_, &c.admin_listen);
  return c;
}

bool GatewayShard::HandOver(unsigned to, runtime::Stream* stream, runtime::StreamHandler* handler,
                            ShardFn adopt) {
  if (PostTo(to, std::move(adopt))) {
    metrics_.handoffs.Add();
    return true;
  }
  // The target is behind by a whole queue: refusing is cheaper than waiting.
  metrics_.handoffs_refused.Add();
  stream->Attach(shard_, handler);
  return false;
}

bool GatewayShard::PostTo(unsigned to, ShardFn fn) {
  if (gateway_ == nullptr) {
    std::move(fn)(*this);
    return true;
  }
  return gateway_->Post(index(), to, std::move(fn));
}

absl::Status GatewayShard::Reload(GatewayConfig fresh) {
  if (!agent_tls_listeners_.empty() && fresh.cert_file.empty()) {
    // The TLS listeners stay until a restart; without a context they would serve plain.
    return absl::InvalidArgumentError(
        "cert and key: the running agent_tls_listen needs them (listeners change on restart)");
  }
  runtime::SslCtxPtr ctx;
  if (!fresh.cert_file.empty()) {
    auto made = runtime::CreateServerContext({fresh.cert_file, fresh.key_file}, libctx_.get());
    if (!made.ok()) {
      return made.status();
    }
    ctx = std::move(*made);
  }
  auto keys = StreamerKeys::Load(fresh.streamer_keys_file);
  if (!keys.ok()) {
    return keys.status();
  }
  auto allow = SourceAllowlist::Parse(fresh.frontend_allow);
  if (!allow.ok()) {
    return allow.status();
  }
  if (ctx) {
    // Last of the steps that may fail, since it changes the keys in place.
    // New tickets with the (possibly rotated) keys file; tickets from before still resume
    // while their key is the previous one.
    if (absl::Status s = LoadTicketKeys(fresh.ticket_keys_file); !s.ok()) {
      return s;
    }
    ticket_keys_->Install(ctx.get());
    OfferKernelTls(ctx.get(), fresh);
  }
  // Listeners are bound once; whatever the file now says about them waits for a restart.
  fresh.agent_tls_listen = config_.agent_tls_listen;
  fresh.agent_plain_listen = config_.agent_plain_listen;
  fresh.frontend_listen = config_.frontend_listen;
  fresh.admin_listen = config_.admin_listen;
  // Every SSL object holds a reference to the context it was made from, so replacing ours
  // frees the old one only when its last connection ends.
  if (ctx || fresh.cert_file.empty()) {
    tls_ctx_ = std::move(ctx);
  }
  keys_ = std::move(*keys);
  frontend_allow_ = std::move(*allow);
  config_ = std::move(fresh);
  UpdateControlLinkProfile();
  route_config_.host_suffix = config_.host_suffix;
  ApplyHandshakeBudget();
  return absl::OkStatus();
}

void GatewayShard::StopAccepting() {
  for (auto* list : {&agent_tls_listeners_, &agent_plain_listeners_, &frontend_listeners_}) {
    for (auto& l : *list) {
      l->Close();
    }
  }
}

void GatewayShard::Drain(std::function<void()> on_drained) {
  if (on_drained) {
    on_drained_.push_back(std::move(on_drained));
  }
  if (!draining_) {
    draining_ = true;
    drain_deadline_ms_ = shard_.now_ms() + config_.drain_timeout_ms;
    StopAccepting();
    // GoAway closes the session, which removes it from the registry: collect first.
    std::vector<ControlSession*> sessions;
    registry_.ForEachSession([&](std::string_view, ControlSession* s) { sessions.push_back(s); });
    // Each agent gets its own moment within the reconnect window: a whole fleet told "come
    // back in 1 s" returns at once, before the replacement may even listen (measured in
    // bench/storm.py: 31,343 refused connects), instead of spreading its handshakes.
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_int_distribution<uint32_t> spread(0, config_.reconnect_window_ms);
    for (ControlSession* s : sessions) {
      s->GoAway("gateway draining", config_.drain_reconnect_ms + spread(rng));
    }
    // One line per shard: where tunnels remain is where a slow drain is.
    runtime::LogEvent(runtime::LogLevel::kInfo, "drain_started",
                      {runtime::Kv("shard", index()), runtime::Kv("agents", sessions.size()),
                       runtime::Kv("tunnels_open", metrics_.tunnels_open.Get()),
                       runtime::Kv("deadline_ms", config_.drain_timeout_ms)});
  }
  CheckDrained();
}

void GatewayShard::CheckDrained() {
  if (drained_) {
    for (auto& fn : std::exchange(on_drained_, {})) {
      fn();
    }
    return;
  }
  const bool idle = metrics_.tunnels_open.Get() == 0 && frontend_waiting_ == 0;
  const uint64_t now = shard_.now_ms();
  if (!idle && now < drain_deadline_ms_) {
    shard_.timers().Arm(drain_timer_, now, kDrainPollMs);
    return;
  }
  drained_ = true;
  runtime::LogEvent(
      idle ? runtime::LogLevel::kInfo : runtime::LogLevel::kWarning, "drain_finished",
      {runtime::Kv("shard", index()), runtime::Kv("result", idle ? "idle" : "deadline"),
       runtime::Kv("tunnels_open", metrics_.tunnels_open.Get())});
  for (auto& fn : std::exchange(on_drained_, {})) {
    fn();
  }
}

void GatewayShard::AcceptAgent(int fd, bool tls) {
  if (connections_ >= config_.max_connections ||
      static_cast<uint64_t>(metrics_.unauthenticated.Get()) >= config_.max_unauthenticated) {
    // Past the caps the cheapest answer is an immediate close, which agents read as "busy".
    metrics_.CountControl(AgentResult::kBusy);
    close(fd);
    return;
  }
  AgentHandshake::Start(*this, fd, tls ? tls_ctx_.get() : nullptr);
}

void GatewayShard::AcceptFrontend(int fd) {
  if (connections_ >= config_.max_connections) {
    close(fd);
    return;
  }
  bool allowed = true;
  if (!frontend_allow_.empty()) {
    // One getpeername per media request (the listener does not hand the address over).
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    allowed = getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
              frontend_allow_.Allows(peer);
  }
  FrontendConnection::Start(*this, fd, allowed);
}

void GatewayShard::AcceptAdmin(int fd) { admin_server_->Accept(fd); }

uint16_t GatewayShard::agent_tls_port() const {
  return agent_tls_listeners_.empty() ? 0 : agent_tls_listeners_[0]->port();
}
uint16_t GatewayShard::agent_plain_port() const {
  return agent_plain_listeners_.empty() ? 0 : agent_plain_listeners_[0]->port();
}
uint16_t GatewayShard::frontend_port() const {
  return frontend_listeners_.empty() ? 0 : frontend_listeners_[0]->port();
}
uint16_t GatewayShard::admin_port() const {
  return admin_listeners_.empty() ? 0 : admin_listeners_[0]->port();
}

GatewayFacts GatewayShard::CollectFacts() {
  uint64_t paused = 0;
  for (auto* list : {&agent_tls_listeners_, &agent_plain_listeners_, &frontend_listeners_}) {
    for (const auto& l : *list) {
      paused += l->fd_exhausted_pauses();
    }
  }
  // The listener counts fd exhaustion itself; mirror it into the shard's cell at scrape time.
  metrics_.accept_paused.Add(paused - metrics_.accept_paused.Get());
  auto& buffers = shard_.buffers();
  GatewayFacts facts;
  facts.shards = 1;
  facts.shard_connections = static_cast<double>(connections_);
  facts.stale_completions = static_cast<double>(shard_.stale_completions());
  facts.buffers_in_use = static_cast<double>(buffers.in_use());
  facts.buffers_capacity = static_cast<double>(buffers.count());
  facts.buffers_published = static_cast<double>(buffers.published());
  facts.buffer_shortages = static_cast<double>(buffers.shortages());
  facts.buffer_bytes = static_cast<double>(buffers.buffer_bytes());
  facts.draining = draining_ ? 1 : 0;
  for (const auto& l : agent_tls_listeners_) {
    facts.handshakes_paced += static_cast<double>(l->paced_pauses());
  }
  facts.ktls_available = ktls_.available ? 1 : 0;
  return facts;
}

std::string GatewayShard::RenderMetricsText() {
  GatewayFacts facts = CollectFacts();
  facts.log_lines_suppressed = static_cast<double>(runtime::SuppressedLogLines());
  return RenderMetrics({&metrics_}, facts);
}

}  // namespace camtunnel::gateway
