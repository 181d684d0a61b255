// Whoever waits for a pending tunnel: a media server's frontend connection, or an admin probe.
// Exactly one of the three calls ends the wait; after it the registry forgets the waiter.
#pragma once

#include <span>
#include <string_view>

#include "runtime/stream.h"

namespace camtunnel::gateway {

class TunnelWaiter {
 public:
  // The agent's data connection is up; the waiter takes the stream. `camera_bytes` is what the
  // agent sent behind its data head.
  virtual void OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes) = 0;
  // The agent could not reach the camera (OPEN_FAILED with its errno).
  virtual void OnOpenFailed(int error, std::string_view text) = 0;
  // The agent's session ended before it answered.
  virtual void OnAgentGone() = 0;

 protected:
  ~TunnelWaiter() = default;
};

}  // namespace camtunnel::gateway
