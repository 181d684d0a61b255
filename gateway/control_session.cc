#include "gateway/control_session.h"

#include <cerrno>

#include "gateway/gateway_shard.h"
#include "gateway/log.h"
#include "gateway/tunnel_waiter.h"
#include "proto/crypto.h"
#include "runtime/clock.h"

namespace camtunnel::gateway {

namespace {
constexpr uint32_t kGatewayCapabilities =
    proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno | proto::kCapSpareData;
// Control traffic is a few small frames; more than this queued means the agent is not reading.
constexpr size_t kMaxControlQueue = 64 * 1024;
}  // namespace

void ControlSession::Start(GatewayShard& gw, runtime::Stream* stream,
                           const proto::UpgradeRequest& req, const proto::Digest& agent_key,
                           uint64_t accepted_ms) {
  auto* s = new ControlSession(gw, stream);
  stream->set_handler(s);
  s->agent_id_ = req.agent_id;
  s->hello_ = std::make_unique<PendingHello>(PendingHello{.key_ref = req.key_ref,
                                                          .agent_key = agent_key,
                                                          .agent_nonce = req.agent_nonce,
                                                          .accepted_ms = accepted_ms});
  PendingHello& h = *s->hello_;
  proto::RandomBytes(h.gateway_nonce);
  if (stream->tls()) {
    stream->ExportKeyingMaterial(proto::kExporterLabel, h.exporter);
  } else {
    const proto::Digest session_key = proto::SessionKey(agent_key, h.agent_nonce, h.gateway_nonce);
    s->plain_ = std::make_unique<PlainMacs>(
        PlainMacs{.sealer = proto::FrameSealer(session_key, proto::Direction::kGatewayToAgent),
                  .opener = proto::FrameOpener(session_key, proto::Direction::kAgentToGateway)});
  }
  stream->Write(
      proto::BuildControlAccept(h.gateway_nonce, proto::GatewayProof(agent_key, s->ProofInput())));
  s->last_rx_ms_ = s->last_tx_ms_ = gw.shard().now_ms();
  const uint64_t elapsed = gw.shard().now_ms() - accepted_ms;
  const uint64_t budget = gw.config().handshake_timeout_ms;
  gw.shard().timers().Arm(s->timer_, gw.shard().now_ms(), elapsed < budget ? budget - elapsed : 0);
}

ControlSession::ControlSession(GatewayShard& gw, runtime::Stream* stream)
    : gw_(gw), stream_(stream) {
  timer_.set_callback([this] { OnHeartbeatTick(); });
}

std::string ControlSession::remote() const { return stream_->peer_text(); }

proto::HandshakeProofInput ControlSession::ProofInput() const {
  const bool tls = stream_->tls();
  return {agent_id_,
          &hello_->key_ref,
          hello_->agent_nonce,
          hello_->gateway_nonce,
          tls ? proto::Transport::kTls : proto::Transport::kPlain,
          std::span<const uint8_t>(hello_->exporter).first(tls ? proto::kExporterBytes : 0)};
}

const proto::ServiceEntry* ControlSession::FindService(std::string_view name,
                                                       std::optional<uint16_t> port) const {
  for (const auto& s : services_) {
    if (!name.empty() && s.name == name) {
      return &s;
    }
  }
  if (port) {
    for (const auto& s : services_) {
      if (s.port == *port) {
        return &s;
      }
    }
  }
  return nullptr;
}

void ControlSession::Send(proto::FrameBuilder& frame) {
  if (state_ == State::kClosing) {
    return;
  }
  if (plain_) {
    stream_->Write(std::span<const uint8_t>(plain_->sealer.Seal(frame)));
  } else {
    stream_->Write(std::span<const uint8_t>(frame.Finish()));
  }
  last_tx_ms_ = gw_.shard().now_ms();
}

void ControlSession::SendError(proto::ErrorCode code, std::string_view text) {
  proto::FrameBuilder f(proto::FrameType::kError);
  f.AddU16(proto::Tag::kErrorCode, static_cast<uint16_t>(code)).AddText(proto::Tag::kText, text);
  Send(f);
  state_ = State::kClosing;
  stream_->Finish();
}

void ControlSession::SendOpen(proto::TunnelId id, std::string_view service,
                              const proto::Nonce& nonce) {
  proto::FrameBuilder f(proto::FrameType::kOpen);
  f.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id))
      .AddText(proto::Tag::kServiceName, service)
      .Add(proto::Tag::kNonce, nonce);
  Send(f);
}

void ControlSession::SendSpare(proto::TunnelId id, const proto::Nonce& nonce) {
  proto::FrameBuilder f(proto::FrameType::kSpare);
  f.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id)).Add(proto::Tag::kNonce, nonce);
  Send(f);
}

void ControlSession::GoAway(std::string_view reason, uint32_t reconnect_after_ms) {
  proto::FrameBuilder f(proto::FrameType::kGoaway);
  f.AddU32(proto::Tag::kReconnectAfterMs, reconnect_after_ms).AddText(proto::Tag::kText, reason);
  Send(f);
  state_ = State::kClosing;
  stream_->Finish();
}

void ControlSession::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  last_rx_ms_ = gw_.shard().now_ms();
  while (state_ != State::kClosing) {
    proto::Frame frame;
    const proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
    if (st == proto::DecodeStatus::kNeedMore) {
      return;
    }
    if (st == proto::DecodeStatus::kTooLarge) {
      gw_.metrics().CountFrameReject(FrameReject::kTooLarge);
      SendError(proto::ErrorCode::kFrameTooLarge, "frame too large");
      return;
    }
    if (plain_ && !plain_->opener.Open(frame)) {
      gw_.metrics().CountFrameReject(FrameReject::kBadMac);
      LogEvent(LogLevel::kWarning, "control_frame_bad_mac",
               {Kv("agent", agent_id_), Kv("remote", remote())});
      SendError(proto::ErrorCode::kBadMac, "bad frame MAC");
      return;
    }
    if (!frame.Valid()) {
      gw_.metrics().CountFrameReject(FrameReject::kMalformed);
      SendError(proto::ErrorCode::kMalformedFrame, "malformed frame");
      return;
    }
    OnFrame(frame);
  }
  if (state_ != State::kClosing && stream_->queued_bytes() > kMaxControlQueue) {
    // Answers (PONG, UNSUPPORTED) pile up only for an agent that sends and never reads; no
    // honest agent does, and the gateway must not buffer for it without bound.
    LogEvent(LogLevel::kWarning, "control_not_reading",
             {Kv("agent", agent_id_), Kv("remote", remote())});
    gw_.metrics().CountFrameReject(FrameReject::kUnexpected);
    state_ = State::kClosing;
    stream_->Close(ENOBUFS);
  }
}

void ControlSession::OnFrame(proto::Frame& frame) {
  const uint8_t type = frame.type();
  if (state_ == State::kAwaitHello) {
    if (type != static_cast<uint8_t>(proto::FrameType::kHello)) {
      gw_.metrics().CountFrameReject(FrameReject::kUnexpected);
      SendError(proto::ErrorCode::kUnexpectedFrame, "expected HELLO");
      return;
    }
    OnHello(frame);
    return;
  }
  switch (static_cast<proto::FrameType>(type)) {
    case proto::FrameType::kPing: {
      proto::FrameBuilder pong(proto::FrameType::kPong);
      pong.AddU64(proto::Tag::kSequence, frame.U64(proto::Tag::kSequence).value_or(0));
      Send(pong);
      return;
    }
    case proto::FrameType::kPong:
      if (frame.U64(proto::Tag::kSequence) == ping_sequence_ && ping_sent_ns_ != 0) {
        last_rtt_us_ = (runtime::MonotonicNs() - ping_sent_ns_) / 1000;
      }
      return;
    case proto::FrameType::kStatus:
      last_status_ = std::string(frame.Text(proto::Tag::kText).value_or(""));
      return;
    case proto::FrameType::kOpenFailed: {
      auto id_text = frame.Text(proto::Tag::kTunnelId);
      auto id = id_text ? proto::ParseTunnelId(*id_text) : std::nullopt;
      const PendingTunnel* p = id ? gw_.registry().FindPending(*id) : nullptr;
      if (p == nullptr || p->agent_id != agent_id_) {
        return;  // late (already timed out) or not ours: nothing to fail
      }
      auto tunnel = gw_.registry().TakePending(*id);
      tunnel->waiter->OnOpenFailed(static_cast<int>(frame.U32(proto::Tag::kErrno).value_or(0)),
                                   frame.Text(proto::Tag::kText).value_or(""));
      return;
    }
    case proto::FrameType::kError:
      LogEvent(LogLevel::kWarning, "agent_error",
               {Kv("agent", agent_id_), Kv("code", frame.U16(proto::Tag::kErrorCode).value_or(0)),
                Kv("text", frame.Text(proto::Tag::kText).value_or(""))});
      state_ = State::kClosing;
      stream_->Close(0);
      return;
    case proto::FrameType::kUnsupported:
      return;
    case proto::FrameType::kHello:
    case proto::FrameType::kWelcome:
    case proto::FrameType::kOpen:
    case proto::FrameType::kSpare:
    case proto::FrameType::kOpened:  // only ever on a spare data connection
    case proto::FrameType::kGoaway:
    case proto::FrameType::kAssign:
    case proto::FrameType::kSwitch:
    case proto::FrameType::kDeactivate:
    case proto::FrameType::kRestart:
      gw_.metrics().CountFrameReject(FrameReject::kUnexpected);
      SendError(proto::ErrorCode::kUnexpectedFrame, "unexpected frame");
      return;
  }
  gw_.metrics().unsupported_frames.Add();
  proto::FrameBuilder u(proto::FrameType::kUnsupported);
  u.AddU8(proto::Tag::kFrameType, type);
  Send(u);
}

void ControlSession::OnHello(const proto::Frame& frame) {
  const proto::Digest expected = proto::AgentProof(hello_->agent_key, ProofInput());
  auto proof = frame.Bytes(proto::Tag::kProof);
  if (!proof || !proto::ConstantTimeEqual(expected, *proof)) {
    gw_.metrics().CountControl(AgentResult::kBadProof);
    LogEvent(LogLevel::kWarning, "hello_bad_proof",
             {Kv("agent", agent_id_), Kv("remote", remote())});
    SendError(proto::ErrorCode::kBadProof, "bad proof");
    return;
  }
  for (std::string_view text : frame.AllText(proto::Tag::kService)) {
    auto entry = proto::ParseServiceEntry(text);
    if (!entry) {
      gw_.metrics().CountFrameReject(FrameReject::kMalformed);
      SendError(proto::ErrorCode::kMalformedFrame, "bad service entry");
      return;
    }
    services_.push_back(std::move(*entry));
  }
  version_ = std::string(frame.Text(proto::Tag::kVersion).value_or(""));
  capabilities_ = frame.U32(proto::Tag::kCapabilities).value_or(0);
  state_ = State::kActive;
  connected_wall_ms_ = runtime::WallMs();
  gw_.metrics().unauthenticated.Add(-1);
  gw_.metrics().agents_connected.Add(1);
  gw_.metrics().CountControl(AgentResult::kAccepted);
  gw_.metrics().handshake_seconds.Observe(
      static_cast<double>(gw_.shard().now_ms() - hello_->accepted_ms) / 1000.0);
  hello_.reset();
  if (ControlSession* old = gw_.registry().Install(agent_id_, this)) {
    // Newest authenticated wins; repeated replacement is the sign of a cloned id.
    gw_.metrics().sessions_replaced.Add();
    LogEvent(LogLevel::kWarning, "session_replaced",
             {Kv("agent", agent_id_), Kv("remote", remote()), Kv("old_remote", old->remote())});
    old->GoAway("replaced", 0);
    // Its spares belong to the connection being replaced (perhaps a process that restarted).
    gw_.spares().DropAgent(agent_id_);
  }
  LogEvent(LogLevel::kInfo, "agent_connected",
           {Kv("agent", agent_id_), Kv("remote", remote()),
            Kv("transport", stream_->tls() ? "tls" : "plain"), Kv("services", services_.size()),
            Kv("version", version_)});
  proto::FrameBuilder w(proto::FrameType::kWelcome);
  w.AddU32(proto::Tag::kCapabilities, kGatewayCapabilities)
      .AddU32(proto::Tag::kHeartbeatMs, gw_.config().heartbeat_ms)
      .AddU64(proto::Tag::kServerTimeMs, runtime::WallMs())
      .AddU32(proto::Tag::kReconnectWindowMs, gw_.config().reconnect_window_ms);
  Send(w);
  gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), gw_.config().heartbeat_ms);
  if (gw_.draining()) {
    // Its handshake began before the drain: it gets the same GOAWAY as everyone else.
    GoAway("gateway draining", gw_.config().drain_reconnect_ms);
    return;
  }
  // Requests that waited for this agent (takeover) open their tunnels now, after WELCOME.
  gw_.agent_waiters().Arrived(agent_id_);
}

void ControlSession::OnHeartbeatTick() {
  const uint64_t now = gw_.shard().now_ms();
  if (state_ == State::kAwaitHello) {
    gw_.metrics().CountControl(AgentResult::kTimeout);
    stream_->Close(ETIMEDOUT);
    return;
  }
  if (state_ != State::kActive) {
    return;
  }
  const uint64_t interval = gw_.config().heartbeat_ms;
  if (now - last_rx_ms_ >= interval * gw_.config().heartbeat_misses) {
    gw_.metrics().heartbeat_timeouts.Add();
    LogEvent(LogLevel::kWarning, "heartbeat_timeout",
             {Kv("agent", agent_id_), Kv("silent_ms", now - last_rx_ms_)});
    state_ = State::kClosing;
    stream_->Close(ETIMEDOUT);
    return;
  }
  if (now - last_tx_ms_ + runtime::TimerWheel::kTickMs >= interval) {
    proto::FrameBuilder ping(proto::FrameType::kPing);
    ping.AddU64(proto::Tag::kSequence, ++ping_sequence_);
    ping_sent_ns_ = runtime::MonotonicNs();
    Send(ping);
  }
  gw_.shard().timers().Arm(timer_, now, interval);
}

void ControlSession::OnStreamEof(runtime::Stream& stream) {
  // The agent closed its side: the session is over.
  stream.Close(0);
}

void ControlSession::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  gw_.shard().timers().Cancel(timer_);
  if (connected_wall_ms_ != 0) {
    gw_.metrics().agents_connected.Add(-1);
    const bool was_live = gw_.registry().Find(agent_id_) == this;
    gw_.registry().Remove(agent_id_, this);
    if (was_live) {
      gw_.registry().FailPendingOf(agent_id_);
      gw_.spares().DropAgent(agent_id_);
      LogEvent(LogLevel::kInfo, "agent_disconnected", {Kv("agent", agent_id_)});
    }
  } else {
    gw_.metrics().unauthenticated.Add(-1);
  }
  gw_.ConnectionClosed();
  delete this;
}

}  // namespace camtunnel::gateway
