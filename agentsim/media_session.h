// The media server's side of one request through the gateway's frontend (an RTSP session or a
// snapshot). Sessions free themselves once their stream has closed and they have told the
// observer; the observer (the load driver) keeps the set of live ones to stop them at the end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agentsim/agent_identity.h"
#include "agentsim/integrity_checker.h"
#include "agentsim/sim_context.h"

namespace camtunnel::agentsim {

class MediaSession;

class MediaObserver {
 public:
  // Once per session, when its open resolves: "ok" (the camera answered through the tunnel) or
  // why not ("rtsp_503", "http_504", "connect_error", "timeout", "closed").
  virtual void OnOpenResult(MediaSession& session, std::string_view result,
                            uint64_t latency_us) = 0;
  // Last call; the session is deleted right after.
  virtual void OnMediaEnded(MediaSession& session) = 0;

 protected:
  ~MediaObserver() = default;
};

class MediaSession {
 public:
  virtual ~MediaSession() = default;
  virtual void Start() = 0;
  // Ends the session soon and cleanly (RTSP: TEARDOWN); OnMediaEnded follows.
  virtual void Stop() = 0;
  // What this session has found so far and not yet added to the stats (they get it when the
  // session ends): live errors for the progress line and /metrics, before anything finishes.
  virtual IntegrityCounts LiveIntegrity() const { return {}; }
};

// "rtsp://<frontend>/<agent>/stream1": the gateway's path form.
std::string FrontendRtspUrl(const Options& options, std::string_view agent_id);

}  // namespace camtunnel::agentsim
