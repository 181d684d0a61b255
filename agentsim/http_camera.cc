#include "agentsim/http_camera.h"

#include "agentsim/sim_context.h"
#include "proto/http_head.h"

namespace camtunnel::agentsim {

HttpCamera::HttpCamera(SimContext& ctx, runtime::Stream& stream, const AgentIdentity& agent) {
  auto snapshot = [&ctx, &agent](http::Exchange& ex) {
    const SnapshotImage& img = ctx.snapshot;
    const std::string checksum = "sha256=" + img.sha256_hex;
    const proto::HeaderField fields[] = {
        {"X-Checksum", checksum}, {"X-Agent", agent.id}, {"Cache-Control", "no-store"}};
    ex.Respond(200, "image/jpeg",
               std::string_view(reinterpret_cast<const char*>(img.body.data()), img.body.size()),
               fields);
    if (ex.method() == "GET") {
      ctx.stats.cameras.bytes_sent += img.body.size();
    }
  };
  http::Router router;
  router.Add("GET", kSnapshotPath, snapshot);
  router.Add("HEAD", kSnapshotPath, snapshot);
  server_ = std::make_unique<http::Server>(
      ctx.shard, std::move(router),
      http::ServerOptions{.keep_alive = false,
                          .request_timeout_ms = 0,  // the tunnel has its own
                          .on_answer = [&ctx](int) { ++ctx.stats.cameras.http_requests; }});
  session_ = server_->Serve(stream);
}

}  // namespace camtunnel::agentsim
