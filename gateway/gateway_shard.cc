#include "gateway/gateway_shard.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "gateway/admin_connection.h"
#include "gateway/agent_handshake.h"
#include "gateway/frontend_connection.h"
#include "runtime/stream.h"

namespace camtunnel::gateway {
namespace {

// Resident set and open descriptors of this process, for /metrics.
double ReadRssBytes() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0;
  long pages_resident = 0;
  in >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

GatewayShard::GatewayShard(runtime::Shard& shard, GatewayConfig config, StreamerKeys keys)
    : shard_(shard), config_(std::move(config)), keys_(std::move(keys)) {
  route_config_.host_suffix = config_.host_suffix;
}

GatewayShard::~GatewayShard() = default;

absl::Status GatewayShard::Listen(const std::vector<std::string>& addresses,
                                  std::vector<std::unique_ptr<runtime::Listener>>* out,
                                  runtime::Listener::AcceptFn fn) {
  for (const std::string& a : addresses) {
    auto l = runtime::Listener::Open(shard_, a, fn);
    if (!l.ok()) {
      return l.status();
    }
    out->push_back(std::move(*l));
  }
  return absl::OkStatus();
}

absl::Status GatewayShard::Start() {
  if (!config_.cert_file.empty()) {
    auto ctx = runtime::CreateServerContext({config_.cert_file, config_.key_file});
    if (!ctx.ok()) {
      return ctx.status();
    }
    tls_ctx_ = std::move(*ctx);
  } else if (!config_.agent_tls_listen.empty()) {
    return absl::InvalidArgumentError("a TLS agent listener needs a certificate and key");
  }
  absl::Status s = Listen(config_.agent_tls_listen, &agent_tls_listeners_,
                          [this](int fd) { AcceptAgent(fd, true); });
  if (s.ok()) {
    s = Listen(config_.agent_plain_listen, &agent_plain_listeners_,
               [this](int fd) { AcceptAgent(fd, false); });
  }
  if (s.ok()) {
    s = Listen(config_.frontend_listen, &frontend_listeners_,
               [this](int fd) { AcceptFrontend(fd); });
  }
  if (s.ok()) {
    s = Listen(config_.admin_listen, &admin_listeners_, [this](int fd) { AcceptAdmin(fd); });
  }
  started_ = s.ok();
  return s;
}

absl::Status GatewayShard::Reload() {
  runtime::SslCtxPtr ctx;
  if (!config_.cert_file.empty()) {
    auto fresh = runtime::CreateServerContext({config_.cert_file, config_.key_file});
    if (!fresh.ok()) {
      return fresh.status();
    }
    ctx = std::move(*fresh);
  }
  auto keys = StreamerKeys::Load(config_.streamer_keys_file);
  if (!keys.ok()) {
    return keys.status();
  }
  // Every SSL object holds a reference to the context it was made from, so replacing ours
  // frees the old one only when its last connection ends.
  if (ctx) {
    tls_ctx_ = std::move(ctx);
  }
  keys_ = std::move(*keys);
  return absl::OkStatus();
}

void GatewayShard::StopAccepting() {
  for (auto* list : {&agent_tls_listeners_, &agent_plain_listeners_, &frontend_listeners_}) {
    for (auto& l : *list) {
      l->Close();
    }
  }
  started_ = false;
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
  FrontendConnection::Start(*this, fd);
}

void GatewayShard::AcceptAdmin(int fd) { AdminConnection::Start(*this, fd); }

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

std::string GatewayShard::RenderMetricsText() const {
  uint64_t paused = 0;
  for (auto* list : {&agent_tls_listeners_, &agent_plain_listeners_, &frontend_listeners_}) {
    for (const auto& l : *list) {
      paused += l->fd_exhausted_pauses();
    }
  }
  // The listener counts fd exhaustion itself; mirror it into the shard's cell at scrape time.
  const_cast<ShardMetrics&>(metrics_).accept_paused.Add(paused - metrics_.accept_paused.Get());
  return RenderMetrics(
      {&metrics_},
      {{"camtunnel_process_resident_memory_bytes", ReadRssBytes()},
       {"camtunnel_shard_connections", static_cast<double>(connections_)},
       {"camtunnel_stale_completions", static_cast<double>(shard_.stale_completions())},
       {"camtunnel_buffers_in_use",
        static_cast<double>(const_cast<runtime::Shard&>(shard_).buffers().in_use())}});
}

}  // namespace camtunnel::gateway
