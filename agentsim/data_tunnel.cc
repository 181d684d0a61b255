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
      ctx.shard, ctx.options.gateway_agent, ctx.Source(agent.index), ctx.tls_ctx,
      ctx.options.server_name, kUpgradeTimeoutMs, t,
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
  stream.Write(proto::BuildDataRequest(
      ctx_.options.server_name.empty() ? ctx_.options.gateway_agent_text : ctx_.options.server_name,
      agent_.id, agent_.key_ref, tunnel_, proto::DataProof(agent_.key, in)));
}

void DataTunnel::OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  if (camera_) {
    camera_->OnBytes(bytes);
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
  Count("ok");
  // Whatever follows the 101 is already the media server's first request.
  const std::string rest = head_.substr(head.head_bytes);
  head_.clear();
  head_.shrink_to_fit();
  camera_ = MakeCamera(service_, ctx_, stream, agent_);
  if (!rest.empty()) {
    camera_->OnBytes({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
  }
}

void DataTunnel::OnStreamEof(runtime::Stream& stream) {
  if (camera_) {
    camera_->OnEof();
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
