#include "gateway/agent_handshake.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "gateway/tunnel_waiter.h"
#include "proto/crypto.h"
#include "runtime/clock.h"
#include "runtime/log.h"

namespace camtunnel::gateway {

namespace {

// An agent behind NAT can vanish without a FIN or RST (power cut, NAT state dropped). Control
// sessions notice through heartbeats; data connections of an idle tunnel would not, so the
// kernel probes them and gives up on unacknowledged data.
void DetectDeadPeers(int fd) {
  const int on = 1;
  const int idle_s = 30;
  const int interval_s = 10;
  const int probes = 3;
  const unsigned user_timeout_ms = 60000;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

}  // namespace

void AgentHandshake::Start(GatewayShard& gw, int fd, SSL_CTX* tls_ctx) {
  DetectDeadPeers(fd);
  auto* h = new AgentHandshake(gw, gw.shard().now_ms());
  h->stream_ = runtime::Stream::Create(gw.shard(), fd, tls_ctx, h);
  gw.ConnectionOpened();
  gw.metrics().unauthenticated.Add(1);
  gw.shard().timers().Arm(h->deadline_, gw.shard().now_ms(), gw.config().handshake_timeout_ms);
  h->stream_->Start();
}

AgentHandshake::AgentHandshake(GatewayShard& gw, uint64_t started_ms)
    : gw_(gw), started_ms_(started_ms) {
  deadline_.set_callback([this] {
    // Slow TLS or a trickled head: whoever holds a connection without finishing pays nothing
    // more than this deadline.
    gw_.metrics().CountControl(AgentResult::kTimeout);
    counted_ = true;
    stream_->Close(ETIMEDOUT);
  });
}

void AgentHandshake::OnStreamReady(runtime::Stream& stream) {
  if (stream.tls()) {
    (stream.tls_resumed() ? gw_.metrics().tls_resumed_handshakes
                          : gw_.metrics().tls_full_handshakes)
        .Add();
  }
}

void AgentHandshake::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  head_.Append(bytes);
  if (moving_) {
    return;  // read again on the target shard
  }
  proto::RequestHead head;
  switch (head_.Parse(&head)) {
    case proto::HeadResult::kNeedMore:
      return;
    case proto::HeadResult::kComplete:
      OnHead(head);
      return;
    case proto::HeadResult::kTooLarge:
    case proto::HeadResult::kTooManyHeaders:
      Refuse(431, "request head too large", AgentResult::kHeadTooLarge, false);
      return;
    case proto::HeadResult::kMalformed:
      Refuse(400, "malformed request head", AgentResult::kBadRequest, false);
      return;
  }
}

void AgentHandshake::OnStreamEof(runtime::Stream& stream) {
  if (moving_) {
    return;  // the stream knows (read_eof); the target shard closes it
  }
  stream.Close(0);  // gave up before finishing its head
}

void AgentHandshake::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  if (!counted_ && stream_->tls() && error != 0) {
    // A failed TLS handshake, or a TLS peer that vanished before sending its head.
    gw_.metrics().CountControl(AgentResult::kTlsError);
  }
  gw_.shard().timers().Cancel(deadline_);
  if (counted_unauthenticated_) {
    gw_.metrics().unauthenticated.Add(-1);
  }
  gw_.ConnectionClosed();
  delete this;
}

void AgentHandshake::Refuse(int status, std::string_view text, AgentResult result, bool data) {
  // The answer gets its linger; the handshake deadline must not reset it or count it again.
  gw_.shard().timers().Cancel(deadline_);
  counted_ = true;
  if (data) {
    gw_.metrics().CountData(result);
  } else {
    gw_.metrics().CountControl(result);
  }
  // Refusals come in floods (scans, a fleet with an expired key): the log's per-event rate
  // limit keeps them to a few lines per window and counts the rest.
  runtime::LogEvent(runtime::LogLevel::kInfo, "agent_refused",
                    {runtime::Kv("kind", data ? "data" : "control"), runtime::Kv("status", status),
                     runtime::Kv("reason", text), runtime::Kv("remote", stream_->peer_text())});
  stream_->Write(proto::BuildUpgradeError(status, text));
  stream_->Finish();
}

void AgentHandshake::OnHead(const proto::RequestHead& head) {
  head_bytes_ = head.head_bytes;
  // From here the connection either becomes something else or is refused: stop reading heads.
  const proto::UpgradeParse parsed = proto::ParseUpgradeRequest(head);
  const bool is_data = head.target == proto::kDataPath;
  if (!parsed.request) {
    Refuse(400, proto::UpgradeErrorName(parsed.error), AgentResult::kBadRequest, is_data);
    return;
  }
  const proto::UpgradeRequest& req = *parsed.request;
  // A control connection lives on its agent's home shard; a data connection goes where its
  // tunnel is pending (the shard is in the id's top byte; an id naming no shard stays here and
  // is refused as unknown).
  const unsigned home = req.kind == proto::UpgradeKind::kControl
                            ? gw_.HomeShard(req.agent_id)
                            : static_cast<unsigned>(req.tunnel_id >> 56);
  if (home != gw_.index() && home < gw_.shard_count()) {
    MoveTo(home, is_data);
    return;
  }
  if (!is_data && !head_.After(head).empty()) {
    // HELLO must wait for our 101 (it carries a proof over our nonce): early bytes are a
    // protocol violation. A data connection may pipeline camera bytes behind its head.
    Refuse(400, "data before the upgrade was accepted", AgentResult::kBadRequest, is_data);
    return;
  }
  if (!stream_->tls() && gw_.tls_enabled() && !gw_.config().allow_plain_with_tls) {
    Refuse(403, "this gateway requires TLS", AgentResult::kForbidden, is_data);
    return;
  }
  const uint64_t now_s = runtime::WallMs() / 1000;
  if (req.key_ref.expiry <= now_s) {
    Refuse(401, "key expired", AgentResult::kUnauthorized, is_data);
    return;
  }
  if (gw_.Denied(req.agent_id)) {
    Refuse(401, "agent revoked", AgentResult::kUnauthorized, is_data);
    return;
  }
  if (req.kind == proto::UpgradeKind::kControl) {
    OnControl(req);
  } else {
    OnData(req);
  }
}

void AgentHandshake::OnControl(const proto::UpgradeRequest& req) {
  auto key = gw_.keys().AgentKey(req.agent_id, req.key_ref);
  if (!key) {
    Refuse(401, "unknown key id", AgentResult::kUnauthorized, false);
    return;
  }
  // The session now owns the stream and the unauthenticated count until HELLO verifies.
  counted_unauthenticated_ = false;
  ControlSession::Start(gw_, stream_, req, *key, started_ms_);
  Detach();
}

void AgentHandshake::OnData(const proto::UpgradeRequest& req) {
  const PendingTunnel* pending = gw_.registry().FindPending(req.tunnel_id);
  if (pending == nullptr) {
    Refuse(404, "no such pending tunnel", AgentResult::kNotFound, true);
    return;
  }
  if (pending->agent_id != req.agent_id) {
    Refuse(403, "tunnel belongs to another agent", AgentResult::kForbidden, true);
    return;
  }
  auto key = gw_.keys().AgentKey(req.agent_id, req.key_ref);
  if (!key) {
    Refuse(401, "unknown key id", AgentResult::kUnauthorized, true);
    return;
  }
  uint8_t exporter[proto::kExporterBytes];
  std::span<const uint8_t> exporter_view;
  if (stream_->tls()) {
    if (!stream_->ExportKeyingMaterial(proto::kExporterLabel, exporter)) {
      Refuse(400, "no TLS exporter", AgentResult::kTlsError, true);
      return;
    }
    exporter_view = exporter;
  }
  const proto::DataProofInput in{req.agent_id,
                                 &req.key_ref,
                                 req.tunnel_id,
                                 pending->nonce,
                                 stream_->tls() ? proto::Transport::kTls : proto::Transport::kPlain,
                                 exporter_view};
  const proto::Digest expected = proto::DataProof(*key, in);
  if (!proto::ConstantTimeEqual(expected, req.proof)) {
    // The tunnel stays pending: a forger who guessed its id cannot cancel it.
    Refuse(401, "bad proof", AgentResult::kBadProof, true);
    return;
  }
  std::optional<PendingTunnel> tunnel = gw_.registry().TakePending(req.tunnel_id);
  gw_.metrics().CountData(AgentResult::kAccepted);
  stream_->Write(proto::BuildDataAccept());
  // The waiter takes the stream (and its handler slot) before this object goes away.
  tunnel->waiter->OnDataConnection(stream_, Bytes(head_.buffer().substr(head_bytes_)), 0);
  Detach();
}

void AgentHandshake::MoveTo(unsigned shard, bool data) {
  moving_ = true;
  gw_.shard().timers().Cancel(deadline_);
  if (!stream_->Detach([this, shard, data](runtime::Stream* s) { OnDetached(s, shard, data); })) {
    moving_ = false;
    Refuse(503, "cannot hand the connection over", AgentResult::kBusy, data);
  }
}

void AgentHandshake::OnDetached(runtime::Stream* stream, unsigned shard, bool data) {
  const uint64_t started = started_ms_;
  auto adopt = [stream, bytes = head_.Take(), started](GatewayShard& to) mutable {
    Adopt(to, stream, std::move(bytes), started);
  };
  if (!gw_.HandOver(shard, stream, this, std::move(adopt))) {
    Refuse(503, "gateway busy", AgentResult::kBusy, data);
    return;
  }
  // The connection and its unauthenticated count leave with it.
  if (counted_unauthenticated_) {
    gw_.metrics().unauthenticated.Add(-1);
  }
  gw_.ConnectionClosed();
  delete this;
}

void AgentHandshake::Adopt(GatewayShard& gw, runtime::Stream* stream, std::string bytes,
                           uint64_t started_ms) {
  auto* h = new AgentHandshake(gw, started_ms);
  h->stream_ = stream;
  gw.ConnectionOpened();
  gw.metrics().unauthenticated.Add(1);
  stream->Attach(gw.shard(), h);
  const uint64_t now = gw.shard().now_ms();
  const uint64_t deadline = started_ms + gw.config().handshake_timeout_ms;
  gw.shard().timers().Arm(h->deadline_, now, deadline > now ? deadline - now : 1);
  // An EOF that came while moving was swallowed: the stream remembers it (read_eof) and the
  // relay replays it; a control session that said nothing more runs into its HELLO deadline.
  h->OnStreamData(*stream, Bytes(bytes));
}

void AgentHandshake::Detach() {
  gw_.shard().timers().Cancel(deadline_);
  if (counted_unauthenticated_) {
    gw_.metrics().unauthenticated.Add(-1);
  }
  // The connection stays open under its new owner, which takes over the connection count.
  stream_ = nullptr;
  delete this;
}

}  // namespace camtunnel::gateway
