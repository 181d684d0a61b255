// A simulated camera's HTTP service on one tunnel, served by the shared HTTP server
// (http/server.h) on the tunnel's stream: GET (or HEAD) /snapshot.jpg answers the shared snapshot
// body with its checksum (X-Checksum: sha256=<hex>) and the agent's id (X-Agent); any other path
// is 404. One request per connection (Connection: close), as snapshot pollers use it.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "agentsim/camera_session.h"
#include "http/server.h"

namespace camtunnel::agentsim {

inline constexpr std::string_view kSnapshotPath = "/snapshot.jpg";

class HttpCamera final : public CameraSession {
 public:
  HttpCamera(SimContext& ctx, runtime::Stream& stream, const AgentIdentity& agent);

  void OnBytes(std::span<const uint8_t> bytes) override { session_->OnBytes(bytes); }
  void OnEof() override { session_->OnEof(); }

 private:
  // Its own small server per tunnel, since the answer names this camera's agent: a routing
  // table of one path, made once per snapshot connection (each of which costs a TLS handshake
  // or at least a connect at the gateway, far more). Before the session, which uses it.
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::EmbeddedSession> session_;
};

}  // namespace camtunnel::agentsim
