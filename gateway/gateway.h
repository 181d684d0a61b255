// The gateway process: N shards (DESIGN "Sharding"), each a thread with its own ring, its own
// SO_REUSEPORT listeners, TLS context and registry, and a bounded queue for every ordered pair
// of shards. Shards share only what this object hands them: the session ticket keys (an
// immutable snapshot read by every shard's handshakes) and the queues. Control actions (start,
// reload, drain, stop) come from the thread that owns this object (main's signal loop).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "gateway/config.h"
#include "gateway/streamer_keys.h"
#include "runtime/shard_group.h"
#include "runtime/ticket_keys.h"

namespace camtunnel::gateway {

class GatewayShard;

// A step for another shard, run on that shard's thread with its GatewayShard.
using ShardFn = absl::AnyInvocable<void(GatewayShard&) &&>;

// The home shard of an agent: every connection naming it (control, data, media request) is
// handed there, so its session, pending tunnels and relays live on one core. FNV-1a, so the
// mapping is the same in every process and release (operators and tests can compute it).
unsigned HomeShardOf(std::string_view agent_id, unsigned shards);

// Shards to run for `configured` (0: one per online CPU).
unsigned ShardCount(unsigned configured);

class Gateway {
 public:
  Gateway(GatewayConfig config, StreamerKeys keys);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Starts `shards` threads. Shard 0 binds every listener first (checking that no other process
  // holds the ports); the others then join the same ports with SO_REUSEPORT, so port 0 in the
  // configuration means one free port shared by all shards. The admin listener is shard 0's
  // alone: admin requests that concern other shards are handed to them.
  absl::Status Start(unsigned shards, size_t queue_capacity = runtime::ShardGroup::kQueueCapacity);
  // Applies a checked configuration on every shard (each re-reads the files into its own TLS
  // context); the first shard to fail stops the reload and its error is returned.
  absl::Status Reload(const GatewayConfig& fresh);
  // Drain on every shard; `on_drained` runs (on some shard's thread) once all have drained.
  void Drain(std::function<void()> on_drained);
  // Ends every loop (what the drain left open is closed) and joins; returns streams left over.
  size_t Stop(uint64_t max_ms = 2000);
  // Runs `fn` on shard `shard` and waits for it: for control actions and tests.
  void RunOn(unsigned shard, const std::function<void(GatewayShard&)>& fn);

  unsigned size() const { return static_cast<unsigned>(shards_.size()); }
  GatewayShard& shard(unsigned i) { return *shards_[i]; }
  runtime::ShardGroup& group() { return group_; }
  const std::shared_ptr<runtime::TicketKeys>& ticket_keys() const { return ticket_keys_; }
  // True once every shard's listeners are up (before that /readyz answers 503).
  bool all_started() const { return all_started_.load(std::memory_order_acquire); }

  // On shard `from`'s thread: queues `fn` for shard `to` (runs it inline when to == from).
  // False when that queue is full: the caller refuses the work and counts it.
  bool Post(unsigned from, unsigned to, ShardFn fn);

  uint16_t agent_tls_port() const;
  uint16_t agent_plain_port() const;
  uint16_t frontend_port() const;
  uint16_t admin_port() const;

 private:
  GatewayConfig config_;
  StreamerKeys keys_;
  std::shared_ptr<runtime::TicketKeys> ticket_keys_;
  runtime::ShardGroup group_;
  std::vector<std::unique_ptr<GatewayShard>> shards_;
  std::atomic<bool> all_started_{false};
  bool stopped_ = false;
};

}  // namespace camtunnel::gateway
