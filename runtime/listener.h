// A listening socket on one shard with a multishot accept. Running out of file descriptors
// pauses accepting for a moment (counted) instead of failing; the backlog holds the callers.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::runtime {

// "127.0.0.1:8554", "[::1]:8554", "0.0.0.0:443", "[::]:443". Port 0 picks a free port.
absl::StatusOr<sockaddr_storage> ParseListenAddress(const std::string& text);

// Pacing for new connections (DESIGN "TLS": a full handshake costs ~230 us of CPU, so a fleet
// reconnecting at once is admitted at a set rate). Over budget, the listener simply stops
// accepting: connections wait in the kernel's backlog, costing nothing, and established relays
// keep the shard. The hard cap (accept and close at once) is the owner's, in its accept
// callback.
struct AcceptBudget {
  uint32_t per_second = 0;  // 0: no pacing
  uint32_t burst = 0;       // tokens saved up at most; 0: per_second / 10, at least 1
};

class Listener final : public IoObject {
 public:
  using AcceptFn = std::function<void(int fd)>;
  static constexpr uint64_t kFdExhaustedPauseMs = 100;
  // A port still held by a process that just died is retried this often, this many times.
  static constexpr int kBindAttempts = 40;
  static constexpr int kBindRetryMs = 50;

  // Binds with SO_REUSEPORT (one listener per shard on the same port) and starts accepting.
  // `exclusive` first checks that no other socket holds the port (so a second gateway cannot
  // silently share it); the first shard of a process checks, later shards join with false.
  // `budget`: paced from the first accept on (set_accept_budget later has to end a running
  // multishot accept first).
  static absl::StatusOr<std::unique_ptr<Listener>> Open(Shard& shard, const std::string& address,
                                                        AcceptFn on_accept, bool exclusive = true,
                                                        const AcceptBudget& budget = {});
  ~Listener();
  // True when no socket holds `address`'s port (a plain bind would succeed): the process being
  // taken over has closed its listener there.
  static bool PortFree(const std::string& address);

  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }
  uint64_t fd_exhausted_pauses() const { return fd_exhausted_pauses_; }
  // Applies from the next accept on. With a budget the listener accepts one connection per
  // ring operation (never more than it may admit); without, a multishot accept.
  void set_accept_budget(const AcceptBudget& budget);
  // Times the budget ran out and accepting paused.
  uint64_t paced_pauses() const { return paced_pauses_; }
  // Stops accepting for good (draining); connections in the backlog are refused.
  void Close();

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override { Close(); }

 private:
  enum Op : uint8_t { kAcceptOp = 0, kCancelOp = 1 };

  Listener(Shard& shard, int fd, std::string address, AcceptFn on_accept);
  void Arm();
  bool TakeToken();
  uint64_t MsUntilToken() const;

  Shard* shard_;
  int fd_;
  uint32_t slot_;
  std::string address_;
  uint16_t port_ = 0;
  AcceptFn on_accept_;
  bool armed_ = false;
  bool closed_ = false;
  Timer retry_timer_;
  uint64_t fd_exhausted_pauses_ = 0;
  AcceptBudget budget_;
  double tokens_ = 0;
  uint64_t tokens_at_ms_ = 0;  // when tokens_ was last refilled
  uint64_t paced_pauses_ = 0;
};

}  // namespace camtunnel::runtime
