#include "agentsim/camera_session.h"

#include "agentsim/http_camera.h"
#include "agentsim/rtsp_camera.h"

namespace camtunnel::agentsim {

std::unique_ptr<CameraSession> MakeCamera(std::string_view service, SimContext& ctx,
                                          runtime::Stream& stream, const AgentIdentity& agent) {
  if (service == "rtsp") {
    return std::make_unique<RtspCamera>(ctx, stream, agent);
  }
  return std::make_unique<HttpCamera>(ctx, stream, agent);
}

}  // namespace camtunnel::agentsim
