#include "agentsim/data_tunnel.h"

#include <cerrno>

#include "agentsim/dial.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"

namespace camtunnel::agentsim {

void DataTunnel::Start(SimContext& ctx, const AgentIdentity& agent, proto::TunnelId tunnel,
                       std::string_view service, const proto::Nonce& open_nonce) {
  auto* t = new DataTunnel(ctx, agent, tunnel, service, open_nonce);
  ctx.shard.timers().Arm(t->deadline_, ctx.shard.now_ms(), kUpgradeTimeoutMs);
  Dial(
      ctx.shard, ctx.GatewayAddress(agent), ctx.Source(agent.index), ctx.GatewayTls(agent),
      ctx.GatewayServerName(agent), kUpgradeTimeoutMs, t,
      [t](runtime::Stream* s, int error) { t->OnDialed(s, error); },
      ctx.tls_sessions ? ctx.tls_sessions->Find(agent.index) : nullptr);
}

DataTunnel::DataTunnel(SimContext& ctx, const AgentIdentity& agent, proto::TunnelId tunnel,
                       std::string_view service, const proto::Nonce& open_nonce)
    : ctx_(ctx), agent_(agent), tunnel_(tunnel), service_(service), open_nonce_(open_nonce) {
  deadline_.set_callback([this] {
    Count("timeout");
    if (stream_ != nullptr) {
      stream_->Close(ETIMEDOUT);
    }
  });
}

void DataTunnel::Count(const std::string& result) {
  if (!counted_) {
    counted_ = true;
    ++ctx_.stats.agents.data_connections[result];
  }
}

void DataTunnel::OnDialed(runtime::Stream* stream, int error) {
  if (stream == nullptr) {
    // The gateway answers the media server 504 when its deadline passes; nothing to send.
    Count(error == ETIMEDOUT ? "timeout" : "connect_error");
    delete this;
    return;
  }
  stream_ = stream;
  if (counted_ || ctx_.stopping) {
    stream->Close(ETIMEDOUT);
  }
}

void DataTunnel::OnStreamReady(runtime::Stream& stream) {
  uint8_t exporter[proto::kExporterBytes];
  std::span<const uint8_t> exporter_view;
  if (stream.tls()) {
    if (!stream.ExportKeyingMaterial(proto::kExporterLabel, exporter)) {
      Count("tls_exporter");
      stream.Close(EPROTO);
      return;
    }
    exporter_view = exporter;
  }
  // Bound to this connection's exporter: the proof is worthless on any other connection.
  const proto::DataProofInput in{agent_.id,
                                 &agent_.key_ref,
                                 tunnel_,
                                 open_nonce_,
                                 stream.tls() ? proto::Transport::kTls : proto::Transport::kPlain,
                                 exporter_view};
  stream.Write(proto::BuildDataRequest(ctx_.GatewayHost(agent_), agent_.id, agent_.key_ref, tunnel_,
                                       proto::DataProof(agent_.key, in)));
}

void DataTunnel::OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  if (camera_) {
    camera_->OnBytes(bytes);
    return;
  }
  if (spare_waiting_) {
    OnSpareBytes(stream, bytes);
    return;
  }
  if (head_.empty()) {
    KeepTlsSession(ctx_, agent_.index, stream);
  }
  head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::ResponseHead head;
  const proto::HeadResult r = proto::ParseResponseHead(head_, &head);
  if (r == proto::HeadResult::kNeedMore) {
    return;
  }
  if (r != proto::HeadResult::kComplete || head.status != 101) {
    Count(r == proto::HeadResult::kComplete ? "status_" + std::to_string(head.status)
                                            : "malformed_answer");
    stream.Close(0);
    return;
  }
  ctx_.shard.timers().Cancel(deadline_);
  Count(service_.empty() ? "spare" : "ok");
  // Whatever follows the 101 is already the media server's first request (or, on a spare,
  // the gateway's OPEN).
  const std::string rest = head_.substr(head.head_bytes);
  head_.clear();
  head_.shrink_to_fit();
  const std::span<const uint8_t> rest_bytes(reinterpret_cast<const uint8_t*>(rest.data()),
                                            rest.size());
  if (service_.empty()) {
    ++ctx_.stats.agents.spares["held"];
    spare_waiting_ = true;
    if (!rest.empty()) {
      OnSpareBytes(stream, rest_bytes);
    }
    return;
  }
  StartCamera(stream, rest_bytes);
}

void DataTunnel::StartCamera(runtime::Stream& stream, std::span<const uint8_t> first_bytes) {
  camera_ = MakeCamera(service_, ctx_, stream, agent_);
  if (!first_bytes.empty()) {
    camera_->OnBytes(first_bytes);
  }
}

void DataTunnel::OnSpareBytes(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  proto::Frame frame;
  const proto::DecodeStatus st = open_decoder_.Decode(bytes, &frame);
  if (st == proto::DecodeStatus::kNeedMore) {
    return;
  }
  spare_waiting_ = false;
  const std::optional<proto::TunnelFields> open =
      st == proto::DecodeStatus::kFrame && frame.Valid() &&
              frame.type() == static_cast<uint8_t>(proto::FrameType::kOpen)
          ? proto::ReadOpen(frame)
          : std::nullopt;
  if (!open) {
    ++ctx_.stats.agents.spares["bad_open"];
    stream.Close(EPROTO);
    return;
  }
  ++ctx_.stats.agents.opens_received;
  if (open->service != "rtsp" && open->service != "http") {
    ++ctx_.stats.agents.opens_refused;
    ++ctx_.stats.agents.spares["refused"];
    proto::FrameBuilder failed(proto::FrameType::kOpenFailed);
    failed.AddText(proto::Tag::kTunnelId, open->tunnel_text)
        .AddU32(proto::Tag::kErrno, EPERM)
        .AddText(proto::Tag::kText, "service not exposed");
    stream.Write(failed.Finish());
    stream.Finish();
    return;
  }
  ++ctx_.stats.agents.spares["opened"];
  tunnel_ = open->tunnel;
  service_ = std::string(open->service);
  proto::FrameBuilder opened(proto::FrameType::kOpened);
  opened.AddText(proto::Tag::kTunnelId, open->tunnel_text);
  stream.Write(opened.Finish());
  StartCamera(stream, bytes);  // what followed the OPEN: the media server's first bytes
}

void DataTunnel::OnStreamEof(runtime::Stream& stream) {
  if (camera_) {
    camera_->OnEof();
  } else if (spare_waiting_) {
    ++ctx_.stats.agents.spares["closed_unused"];  // the gateway's idle limit, or its session
    stream.Close(0);
  } else {
    Count("closed");
    stream.Close(0);
  }
}

void DataTunnel::OnStreamWritable(runtime::Stream& /*stream*/) {
  if (camera_) {
    camera_->OnWritable();
  }
}

void DataTunnel::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  Count(error == EPROTO ? "tls_error" : "closed");
  stream_ = nullptr;
  // The close may have completed synchronously inside the camera's own call: free the camera
  // (and us) once the current batch has unwound. It writes nothing meanwhile (the stream is
  // closed) and its timers cannot fire before the deferred work runs.
  ctx_.shard.Defer([this] { delete this; });
}

}  // namespace camtunnel::agentsim
