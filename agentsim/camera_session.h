// The simulated camera at the agent end of one data tunnel: it gets the media server's bytes
// exactly as a real camera's socket would (after the gateway's 101) and answers on the same
// stream, in-process, so a tunnel costs one socket instead of three.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "agentsim/agent_identity.h"
#include "agentsim/sim_context.h"
#include "runtime/stream.h"

namespace camtunnel::agentsim {

class CameraSession {
 public:
  virtual ~CameraSession() = default;
  virtual void OnBytes(std::span<const uint8_t> bytes) = 0;
  // The media server finished sending.
  virtual void OnEof() = 0;
  // The tunnel's send queue drained after backpressure.
  virtual void OnWritable() {}
};

// "rtsp" or "http"; the stream stays owned by the tunnel and outlives the camera.
std::unique_ptr<CameraSession> MakeCamera(std::string_view service, SimContext& ctx,
                                          runtime::Stream& stream, const AgentIdentity& agent);

}  // namespace camtunnel::agentsim
