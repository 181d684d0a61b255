// Whoever waits for a pending tunnel: a media server's frontend connection, or an admin probe.
// Exactly one of the three calls ends the wait; after it the registry forgets the waiter.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "runtime/stream.h"

namespace camtunnel::gateway {

class TunnelWaiter {
 public:
  // The agent's data connection is up; the waiter takes the stream. `camera_bytes` is what the
  // agent sent behind its data head; `sent_ahead` how many of the FirstBytes() were already
  // written on `data` (behind OPEN on a spare), 0 on any other connection.
  virtual void OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes,
                                size_t sent_ahead) = 0;
  // The bytes for the camera known before the tunnel exists (the media server's routed first
  // request, as the relay will forward it to `camera_authority`); written right behind OPEN on
  // a spare whose agent takes early data (PROTOCOL.md 8.1). Empty: nothing to send ahead.
  virtual std::string FirstBytes(std::string_view /*camera_authority*/) { return {}; }
  // The agent could not reach the camera (OPEN_FAILED with its errno).
  virtual void OnOpenFailed(int error, std::string_view text) = 0;
  // The agent's session ended before it answered.
  virtual void OnAgentGone() = 0;

 protected:
  ~TunnelWaiter() = default;
};

}  // namespace camtunnel::gateway
