#include "gateway/gateway.h"

#include <unistd.h>

#include <future>
#include <latch>

#include "gateway/gateway_shard.h"

namespace camtunnel::gateway {

unsigned HomeShardOf(std::string_view agent_id, unsigned shards) {
  if (shards <= 1) {
    return 0;
  }
  uint64_t h = 14695981039346656037ULL;  // FNV-1a 64
  for (char c : agent_id) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return static_cast<unsigned>(h % shards);
}

unsigned ShardCount(unsigned configured) {
  if (configured != 0) {
    return configured;
  }
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<unsigned>(cpus) : 1;
}

Gateway::Gateway(GatewayConfig config, StreamerKeys keys)
    : config_(std::move(config)),
      keys_(std::move(keys)),
      ticket_keys_(runtime::TicketKeys::Generate()) {}

Gateway::~Gateway() { Stop(); }

absl::Status Gateway::Start(unsigned shards, size_t queue_capacity) {
  if (shards == 0 || shards > 255) {
    // Tunnel ids carry their shard in the top 8 bits.
    return absl::InvalidArgumentError("shards must be 1..255");
  }
  shards_.resize(shards);
  group_.set_queue_capacity(queue_capacity);
  // Each GatewayShard is made on its own thread, before its loop runs.
  absl::Status s = group_.Start(shards, {}, [this](runtime::Shard& shard) {
    shards_[shard.id()] = std::make_unique<GatewayShard>(shard, config_, keys_, this);
  });
  if (!s.ok()) {
    return s;
  }
  // Shard 0 binds first and proves the ports free; the others join its actual ports.
  RunOn(0, [&s](GatewayShard& gw) { s = gw.Start(nullptr); });
  if (s.ok()) {
    const GatewayConfig bound = shards_[0]->BoundListeners();
    for (unsigned i = 1; i < shards && s.ok(); ++i) {
      RunOn(i, [&s, &bound](GatewayShard& gw) { s = gw.Start(&bound); });
    }
  }
  if (!s.ok()) {
    Stop();
    return s;
  }
  all_started_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

void Gateway::RunOn(unsigned shard, const std::function<void(GatewayShard&)>& fn) {
  std::promise<void> done;
  GatewayShard* gw = shards_[shard].get();
  group_.shard(shard).Post([&] {
    fn(*gw);
    done.set_value();
  });
  done.get_future().wait();
}

absl::Status Gateway::Reload(const GatewayConfig& fresh) {
  absl::Status result;
  for (unsigned i = 0; i < size() && result.ok(); ++i) {
    RunOn(i, [&](GatewayShard& gw) { result = gw.Reload(fresh); });
  }
  return result;
}

void Gateway::Drain(std::function<void()> on_drained) {
  // Counted down on whichever shard finishes last; that shard runs the callback.
  auto left = std::make_shared<std::atomic<unsigned>>(size());
  auto done = std::make_shared<std::function<void()>>(std::move(on_drained));
  // One shard after the other, the first (which answers /readyz) last: once /readyz says
  // "draining", no shard accepts any more.
  for (unsigned i = size(); i-- > 0;) {
    RunOn(i, [left, done](GatewayShard& gw) {
      gw.Drain([left, done] {
        if (left->fetch_sub(1) == 1 && *done) {
          (*done)();
        }
      });
    });
  }
}

size_t Gateway::Stop(uint64_t max_ms) {
  if (stopped_ || shards_.empty()) {
    return 0;
  }
  stopped_ = true;
  const size_t left = group_.Stop(max_ms);
  // Listeners and contexts go after every loop has ended, so no completion can reach them.
  shards_.clear();
  return left;
}

bool Gateway::Post(unsigned from, unsigned to, ShardFn fn) {
  GatewayShard* target = shards_[to].get();
  if (from == to) {
    std::move(fn)(*target);
    return true;
  }
  return group_.Send(from, to, [target, fn = std::move(fn)]() mutable { std::move(fn)(*target); });
}

uint16_t Gateway::agent_tls_port() const { return shards_[0]->agent_tls_port(); }
uint16_t Gateway::agent_plain_port() const { return shards_[0]->agent_plain_port(); }
uint16_t Gateway::frontend_port() const { return shards_[0]->frontend_port(); }
uint16_t Gateway::admin_port() const { return shards_[0]->admin_port(); }

}  // namespace camtunnel::gateway
