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

class Listener final : public IoObject {
 public:
  using AcceptFn = std::function<void(int fd)>;
  static constexpr uint64_t kFdExhaustedPauseMs = 100;

  // Binds with SO_REUSEPORT (one listener per shard on the same port) and starts accepting.
  // `exclusive` first checks that no other socket holds the port (so a second gateway cannot
  // silently share it); the first shard of a process checks, later shards join with false.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(Shard& shard, const std::string& address,
                                                        AcceptFn on_accept, bool exclusive = true);
  ~Listener();

  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }
  uint64_t fd_exhausted_pauses() const { return fd_exhausted_pauses_; }
  // Stops accepting for good (draining); connections in the backlog are refused.
  void Close();

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override { Close(); }

 private:
  Listener(Shard& shard, int fd, std::string address, AcceptFn on_accept);
  void Arm();

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
};

}  // namespace camtunnel::runtime
