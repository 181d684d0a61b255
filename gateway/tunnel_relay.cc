#include "gateway/tunnel_relay.h"

#include <algorithm>
#include <cerrno>

#include "gateway/gateway_shard.h"
#include "gateway/head_reader.h"
#include "runtime/log.h"

namespace camtunnel::gateway {

void TunnelRelay::Start(GatewayShard& gw, runtime::Stream* client, runtime::Stream* camera,
                        const FrontendRoute& route, std::string_view camera_authority,
                        std::string_view agent_id, std::string_view client_bytes,
                        std::span<const uint8_t> camera_bytes, size_t sent_ahead) {
  auto* r = new TunnelRelay(gw, client, camera, route, camera_authority, agent_id);
  r->sent_ahead_ = sent_ahead;
  gw.metrics().tunnels_open.Add(1);
  if (route.form == FrontendForm::kConnect) {
    client->Write("HTTP/1.1 200 Connection established\r\n\r\n");
  }
  if (!camera_bytes.empty()) {
    r->FromCamera(camera_bytes);
  }
  if (!client_bytes.empty() && !r->client_closed_) {
    r->FromClient(Bytes(client_bytes));
  }
  // EOFs that arrived while the tunnel was opening were swallowed; replay them now.
  if (!r->client_closed_ && client->read_eof()) {
    camera->ShutdownWrite();
  }
  // Likewise the camera's, when its data connection was handed over from another shard.
  if (!r->camera_closed_ && camera->read_eof()) {
    r->camera_side_.OnStreamEof(*camera);
  }
}

TunnelRelay::TunnelRelay(GatewayShard& gw, runtime::Stream* client, runtime::Stream* camera,
                         const FrontendRoute& route, std::string_view camera_authority,
                         std::string_view agent_id)
    : gw_(gw),
      client_(client),
      camera_(camera),
      filter_(route, gw.route_config(), camera_authority),
      protocol_(ProtocolOfForm(route.form)),
      agent_id_(agent_id),
      stats_(gw.registry().Stats(agent_id)) {
  if (stats_ != nullptr) {
    ++stats_->open_tunnels;
    ++stats_->tunnels;
  }
  refusal_timer_.set_callback([this] { AnswerRefusal(); });
  client_->set_handler(&client_side_);
  camera_->set_handler(&camera_side_);
}

void TunnelRelay::FromClient(std::span<const uint8_t> bytes) {
  if (camera_closed_ || refusal_ != FrontendError::kOk) {
    return;  // after a refusal nothing more of the client's goes to the camera
  }
  // Body, interleaved and raw bytes pass without a copy into the filter's buffer.
  while (!bytes.empty()) {
    const uint64_t budget = filter_.PassThroughBudget();
    if (budget > 0) {
      const size_t n = budget < bytes.size() ? static_cast<size_t>(budget) : bytes.size();
      ToCamera(bytes.first(n));
      filter_.SkipPassThrough(n);
      bytes = bytes.subspan(n);
      continue;
    }
    scratch_.clear();
    const FrontendError e = filter_.Feed(bytes, &scratch_);
    ToCamera(Bytes(scratch_));
    if (e != FrontendError::kOk) {
      if (e == FrontendError::kOtherAgent) {
        gw_.metrics().CountBadInput(FrontendBadInput::kOtherAgent);
      } else {
        gw_.metrics().CountBadInput(FrontendBadInput::kMalformed);
      }
      runtime::LogEvent(
          runtime::LogLevel::kInfo, "tunnel_request_refused",
          {runtime::Kv("agent", agent_id_), runtime::Kv("reason", FrontendErrorName(e))});
      gw_.metrics().CountFrontend(
          protocol_ == FrontendProtocol::kRtsp ? RequestKind::kRtsp : RequestKind::kHttp,
          FrontendErrorStatus(e));
      // Answers must keep request order: the camera first answers what it already got (its
      // write side is closed so it knows nothing more comes), then the refusal is written.
      refusal_ = e;
      refusal_cseq_ = std::string(filter_.error_cseq());
      client_->PauseRead();
      camera_->ShutdownWrite();
      gw_.shard().timers().Arm(refusal_timer_, gw_.shard().now_ms(), kRefusalDrainMs);
      return;
    }
    break;
  }
  Throttle(client_, camera_);
}

void TunnelRelay::ToCamera(std::span<const uint8_t> bytes) {
  CountToCamera(bytes.size());
  // The filter runs over the client's stream from its first byte, so its first output is what
  // went ahead behind OPEN on the spare, byte for byte: that part is not written twice.
  const size_t skip = std::min<size_t>(sent_ahead_, bytes.size());
  sent_ahead_ -= skip;
  if (skip < bytes.size()) {
    camera_->Write(bytes.subspan(skip));
  }
}

void TunnelRelay::CountToCamera(size_t n) {
  gw_.metrics().bytes_to_camera.Add(n);
  if (stats_ != nullptr) {
    stats_->bytes_to_camera += n;
  }
}

void TunnelRelay::FromCamera(std::span<const uint8_t> bytes) {
  if (client_closed_) {
    return;
  }
  client_->Write(bytes);
  CountToClient(bytes.size());
}

void TunnelRelay::CountToClient(size_t n) {
  gw_.metrics().bytes_to_client.Add(n);
  if (stats_ != nullptr) {
    stats_->bytes_to_client += n;
  }
  Throttle(camera_, client_);
}

void TunnelRelay::AnswerRefusal() {
  if (refusal_answered_) {
    return;
  }
  refusal_answered_ = true;
  gw_.shard().timers().Cancel(refusal_timer_);
  if (!client_closed_) {
    client_->Write(BuildErrorResponse(protocol_, refusal_, refusal_cseq_));
    client_->Finish();
  }
  if (!camera_closed_) {
    camera_->Close(0);
  }
}

void TunnelRelay::Throttle(runtime::Stream* source, runtime::Stream* destination) {
  if (destination->over_high_watermark()) {
    source->PauseRead();
  }
}

void TunnelRelay::Side::OnStreamData(runtime::Stream& /*s*/, std::span<const uint8_t> bytes) {
  if (is_client_) {
    relay_->FromClient(bytes);
  } else {
    relay_->FromCamera(bytes);
  }
}

runtime::Stream* TunnelRelay::Side::RelayTarget(runtime::Stream& /*s*/) {
  // Camera -> client bytes pass untouched; the other way goes through the request filter.
  return is_client_ || relay_->client_closed_ ? nullptr : relay_->client_;
}

void TunnelRelay::Side::OnStreamRelayed(runtime::Stream& /*s*/, size_t bytes) {
  relay_->CountToClient(bytes);
}

void TunnelRelay::Side::OnStreamEof(runtime::Stream& /*s*/) {
  if (!is_client_ && relay_->refusal_ != FrontendError::kOk) {
    relay_->AnswerRefusal();  // the camera answered everything it was sent
    return;
  }
  runtime::Stream* other = is_client_ ? relay_->camera_ : relay_->client_;
  if (!(is_client_ ? relay_->camera_closed_ : relay_->client_closed_)) {
    other->ShutdownWrite();
  }
}

void TunnelRelay::Side::OnStreamWritable(runtime::Stream& /*s*/) {
  runtime::Stream* source = is_client_ ? relay_->camera_ : relay_->client_;
  if (!(is_client_ ? relay_->camera_closed_ : relay_->client_closed_)) {
    source->ResumeRead();
  }
}

void TunnelRelay::Side::OnStreamClosed(runtime::Stream& /*s*/, int error) {
  relay_->OnClosed(is_client_, error);
}

void TunnelRelay::OnClosed(bool is_client, int error) {
  (is_client ? client_closed_ : camera_closed_) = true;
  if (!is_client && refusal_ != FrontendError::kOk) {
    AnswerRefusal();
  }
  runtime::Stream* other = is_client ? camera_ : client_;
  const bool other_closed = is_client ? camera_closed_ : client_closed_;
  if (!other_closed) {
    if (error != 0 && other->state() != runtime::StreamState::kLingering) {
      // Nothing is lost silently: every byte already received from the failed side is
      // delivered (a TEARDOWN right before a client's reset still reaches the camera), then the
      // error is passed on as a reset.
      other->CloseAfterFlush(error);
    } else if (!other->read_eof()) {
      // This side ended cleanly in both directions; the other may still be flushing to its peer.
      other->ShutdownWrite();
    }
  }
  gw_.ConnectionClosed();
  if (client_closed_ && camera_closed_) {
    gw_.metrics().tunnels_open.Add(-1);
    if (stats_ != nullptr) {
      --stats_->open_tunnels;
    }
    delete this;
  }
}

}  // namespace camtunnel::gateway
