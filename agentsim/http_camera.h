// A simulated camera's HTTP service on one tunnel: GET /snapshot.jpg answers the shared snapshot
// body with its checksum (X-Checksum: sha256=<hex>) and the agent's id (X-Agent); anything else is
// 404. One request per connection (Connection: close), as snapshot pollers use it.
#pragma once

#include <span>
#include <string>

#include "agentsim/camera_session.h"

namespace camtunnel::agentsim {

inline constexpr std::string_view kSnapshotPath = "/snapshot.jpg";

class HttpCamera final : public CameraSession {
 public:
  HttpCamera(SimContext& ctx, runtime::Stream& stream, const AgentIdentity& agent)
      : ctx_(ctx), stream_(stream), agent_(agent) {}

  void OnBytes(std::span<const uint8_t> bytes) override;
  void OnEof() override { stream_.Finish(); }

 private:
  SimContext& ctx_;
  runtime::Stream& stream_;
  const AgentIdentity& agent_;
  std::string head_;
  bool answered_ = false;
};

}  // namespace camtunnel::agentsim
