#include "gateway/camera_probe.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "gateway/gateway_shard.h"
#include "gateway/tunnel_opener.h"
#include "proto/http_head.h"
#include "runtime/clock.h"

namespace camtunnel::gateway {
namespace {

double MsSince(uint64_t start_ns) {
  return static_cast<double>(runtime::MonotonicNs() - start_ns) / 1e6;
}

}  // namespace

CameraProbe* CameraProbe::Start(GatewayShard& gw, std::string agent_id, std::string service,
                                std::string path, Done done) {
  auto* p = new CameraProbe(gw, std::move(agent_id), std::move(service), std::move(path),
                            std::move(done));
  const OpenAttempt a = StartTunnel(gw, p->agent_id_, p->service_, std::nullopt, p);
  gw.metrics().CountOpen(a.result);
  if (a.result != OpenResult::kOk) {
    p->Finish(a.status, kOpenResultNames[static_cast<size_t>(a.result)], 0, a.reason);
    return nullptr;  // already finished and freed
  }
  p->tunnel_id_ = a.tunnel_id;
  p->camera_authority_ = a.camera_authority;
  gw.shard().timers().Arm(p->timer_, gw.shard().now_ms(), gw.config().open_timeout_ms);
  return p;
}

CameraProbe::CameraProbe(GatewayShard& gw, std::string agent_id, std::string service,
                         std::string path, Done done)
    : gw_(gw),
      agent_id_(std::move(agent_id)),
      service_(std::move(service)),
      path_(std::move(path)),
      done_(std::move(done)),
      started_ns_(runtime::MonotonicNs()) {
  timer_.set_callback([this] {
    if (state_ == State::kOpening) {
      gw_.registry().TakePending(tunnel_id_);
      Finish(200, "timeout", 0, "the agent did not open the tunnel in time");
    } else if (state_ == State::kAsking) {
      Finish(200, "no_answer", 0, "the camera did not answer in time");
    }
  });
}

void CameraProbe::OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes,
                                   size_t /*sent_ahead*/) {
  stream_ = data;
  stream_->set_handler(this);
  opened_ns_ = runtime::MonotonicNs();
  state_ = State::kAsking;
  gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), kAnswerTimeoutMs);
  std::string request;
  if (service_.find("rtsp") != std::string::npos) {
    request = "OPTIONS rtsp://" + camera_authority_ + path_ +
              " RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camtunnel-probe/1\r\n\r\n";
  } else {
    request = "HEAD " + path_ + " HTTP/1.1\r\nHost: " + camera_authority_ +
              "\r\nUser-Agent: camtunnel-probe/1\r\nConnection: close\r\n\r\n";
  }
  stream_->Write(request);
  if (!camera_bytes.empty()) {
    OnStreamData(*stream_, camera_bytes);
  }
}

void CameraProbe::OnOpenFailed(int error, std::string_view text) {
  Finish(200, "camera_refused", 0, std::string(text) + " (errno " + std::to_string(error) + ")");
}

void CameraProbe::OnAgentGone() { Finish(503, "offline", 0, "agent went offline"); }

void CameraProbe::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (state_ != State::kAsking) {
    return;
  }
  response_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::ResponseHead head;
  switch (proto::ParseResponseHead(response_, &head)) {
    case proto::HeadResult::kNeedMore:
      return;
    case proto::HeadResult::kComplete:
      Finish(200, "ok", head.status, head.reason);
      return;
    default:
      Finish(200, "bad_answer", 0, "the camera's answer is not a valid response head");
      return;
  }
}

void CameraProbe::OnStreamEof(runtime::Stream& /*stream*/) {
  if (state_ == State::kAsking) {
    Finish(200, "no_answer", 0, "the camera closed without answering");
  }
}

void CameraProbe::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  stream_ = nullptr;
  gw_.ConnectionClosed();
  if (state_ == State::kAsking) {
    Finish(200, "no_answer", 0, "tunnel closed: " + std::string(strerror(error)));
    return;  // Finish freed us
  }
  MaybeFree();
}

void CameraProbe::Finish(int admin_status, std::string_view result, int camera_status,
                         std::string_view reason) {
  if (state_ == State::kDone) {
    return;
  }
  state_ = State::kDone;
  gw_.shard().timers().Cancel(timer_);
  if (done_) {
    nlohmann::json j = {{"agent", agent_id_},
                        {"service", service_},
                        {"result", std::string(result)},
                        {"camera_status", camera_status},
                        {"reason", std::string(reason)},
                        {"total_ms", MsSince(started_ns_)}};
    if (opened_ns_ != 0) {
      j["open_ms"] = static_cast<double>(opened_ns_ - started_ns_) / 1e6;
      j["answer_ms"] = MsSince(opened_ns_);
    }
    Done done = std::move(done_);
    done_ = nullptr;
    done(admin_status, j.dump() + "\n");
  }
  if (stream_ != nullptr) {
    stream_->Close(0);  // OnStreamClosed frees us
    return;
  }
  MaybeFree();
}

void CameraProbe::Cancel() {
  done_ = nullptr;
  if (state_ == State::kOpening) {
    gw_.registry().TakePending(tunnel_id_);
  }
  Finish(0, "", 0, "");
}

void CameraProbe::MaybeFree() {
  if (state_ == State::kDone && stream_ == nullptr) {
    gw_.shard().Defer([this] { delete this; });
  }
}

}  // namespace camtunnel::gateway
