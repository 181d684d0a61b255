// Outgoing TCP connections through the ring (IORING_OP_CONNECT), with a deadline and an
// optional source address (load generators spread connections over 127.0.0.x sources, since
// one source address has only ~28,000 ephemeral ports).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "runtime/shard.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::runtime {

class Connector final : public IoObject {
 public:
  // Called once: a connected fd (caller owns it) or -errno (-ETIMEDOUT past the deadline).
  using Done = std::function<void(int fd_or_error)>;

  // Starts a connect; the Connector frees itself after calling `done`.
  static void Start(Shard& shard, const sockaddr_storage& to,
                    const std::optional<sockaddr_storage>& from, uint64_t timeout_ms, Done done);

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override;

 private:
  enum Op : uint8_t { kConnect = 1, kCancel = 2 };
  Connector(Shard& shard, int fd, Done done);
  void Finish(int result);

  Shard* shard_;
  int fd_;
  uint32_t slot_;
  Done done_;
  sockaddr_storage to_{};
  Timer deadline_;
  int in_flight_ = 0;
  int result_ = 0;
};

}  // namespace camtunnel::runtime
