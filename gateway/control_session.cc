#include "gateway/control_session.h"

#include <cerrno>

#include "gateway/gateway_shard.h"
#include "gateway/tunnel_waiter.h"
#include "proto/crypto.h"
#include "runtime/clock.h"
#include "runtime/log.h"

namespace camtunnel::gateway {

namespace {

using runtime::Kv;
using runtime::LogEvent;
using runtime::LogLevel;
using runtime::MonotonicUs;

// Milliseconds from `then_ms` to `now_ms`, 0 if `then_ms` is later. The accept time of a
// connection that moved here from another shard is that shard's loop clock, which can be ahead
// of this shard's (each caches the time once per loop iteration): a plain difference would wrap
// around and make the HELLO deadline already past.
uint64_t MsSince(uint64_t now_ms, uint64_t then_ms) {
  return now_ms > then_ms ? now_ms - then_ms : 0;
}

// Which frame_rejected reason an ERROR this end sent is counted under.
std::optional<FrameReject> RejectFor(proto::ErrorCode code) {
  switch (code) {
    case proto::ErrorCode::kBadMac:
      return FrameReject::kBadMac;
    case proto::ErrorCode::kMalformedFrame:
      return FrameReject::kMalformed;
    case proto::ErrorCode::kFrameTooLarge:
      return FrameReject::kTooLarge;
    case proto::ErrorCode::kUnexpectedFrame:
      return FrameReject::kUnexpected;
    default:
      return std::nullopt;
  }
}

}  // namespace

void ControlSession::Start(GatewayShard& gw, runtime::Stream* stream,
                           const proto::UpgradeRequest& req, const proto::Digest& agent_key,
                           uint64_t accepted_ms) {
  auto* s = new ControlSession(gw, stream, accepted_ms);
  stream->set_handler(s);
  s->agent_id_ = req.agent_id;
  uint8_t exporter[proto::kExporterBytes];
  const bool tls = stream->tls();
  if (tls) {
    stream->ExportKeyingMaterial(proto::kExporterLabel, exporter);
  }
  // HELLO is due within the handshake budget, counted from the TCP accept.
  const uint64_t elapsed = MsSince(gw.shard().now_ms(), accepted_ms);
  const uint64_t budget = gw.config().handshake_timeout_ms;
  const int64_t now = MonotonicUs();
  s->link_.AcceptUpgrade(
      {.agent_id = req.agent_id, .key = &agent_key, .key_ref = &req.key_ref}, req.agent_nonce,
      tls ? proto::Transport::kTls : proto::Transport::kPlain,
      tls ? std::span<const uint8_t>(exporter) : std::span<const uint8_t>(), now,
      now + static_cast<int64_t>(elapsed < budget ? budget - elapsed : 0) * 1000);
  s->ArmTimer(s->link_.next_tick_us());
}

ControlSession::ControlSession(GatewayShard& gw, runtime::Stream* stream, uint64_t accepted_ms)
    : gw_(gw), stream_(stream), link_(gw.control_link_profile(), *this), accepted_ms_(accepted_ms) {
  timer_.set_callback([this] { OnTimer(); });
}

std::string ControlSession::remote() const { return stream_->peer_text(); }

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

void ControlSession::WriteLinkOutput(std::span<const uint8_t> bytes) { stream_->Write(bytes); }

size_t ControlSession::QueuedLinkOutput() const { return stream_->queued_bytes(); }

void ControlSession::SendOpen(proto::TunnelId id, std::string_view service,
                              const proto::Nonce& nonce) {
  proto::FrameBuilder f(proto::FrameType::kOpen);
  f.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id))
      .AddText(proto::Tag::kServiceName, service)
      .Add(proto::Tag::kNonce, nonce);
  link_.Send(f, MonotonicUs());
}

void ControlSession::SendSpare(proto::TunnelId id, const proto::Nonce& nonce) {
  proto::FrameBuilder f(proto::FrameType::kSpare);
  f.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id)).Add(proto::Tag::kNonce, nonce);
  link_.Send(f, MonotonicUs());
}

void ControlSession::GoAway(std::string_view reason, uint32_t reconnect_after_ms) {
  link_.GoAway(reason, reconnect_after_ms, MonotonicUs());
}

void ControlSession::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  link_.Receive(bytes, MonotonicUs());
}

void ControlSession::OnLinkHello(const proto::Frame& frame) {
  for (std::string_view text : frame.AllText(proto::Tag::kService)) {
    auto entry = proto::ParseServiceEntry(text);
    if (!entry) {
      link_.Fail(proto::ErrorCode::kMalformedFrame, "bad service entry", MonotonicUs());
      return;
    }
    services_.push_back(std::move(*entry));
  }
  version_ = std::string(frame.Text(proto::Tag::kVersion).value_or(""));
  connected_wall_ms_ = runtime::WallMs();
  gw_.metrics().unauthenticated.Add(-1);
  gw_.metrics().agents_connected.Add(1);
  gw_.metrics().CountControl(AgentResult::kAccepted);
  gw_.metrics().handshake_seconds.Observe(
      static_cast<double>(MsSince(gw_.shard().now_ms(), accepted_ms_)) / 1000.0);
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
}

void ControlSession::OnLinkEstablished(const proto::LinkWelcome& /*welcome*/) {
  ArmTimer(link_.next_tick_us());
  if (gw_.draining()) {
    // Its handshake began before the drain: it gets the same GOAWAY as everyone else.
    GoAway("gateway draining", gw_.config().drain_reconnect_ms);
    return;
  }
  // Requests that waited for this agent (takeover) open their tunnels now, after WELCOME.
  gw_.agent_waiters().Arrived(agent_id_);
}

void ControlSession::OnLinkFrame(const proto::Frame& frame) {
  if (frame.type() == static_cast<uint8_t>(proto::FrameType::kStatus)) {
    last_status_ = std::string(frame.Text(proto::Tag::kText).value_or(""));
    return;
  }
  OnOpenFailed(frame);  // the only other frame a gateway takes
}

void ControlSession::OnOpenFailed(const proto::Frame& frame) {
  auto id_text = frame.Text(proto::Tag::kTunnelId);
  auto id = id_text ? proto::ParseTunnelId(*id_text) : std::nullopt;
  const PendingTunnel* p = id ? gw_.registry().FindPending(*id) : nullptr;
  if (p == nullptr || p->agent_id != agent_id_) {
    return;  // late (already timed out) or not ours: nothing to fail
  }
  auto tunnel = gw_.registry().TakePending(*id);
  tunnel->waiter->OnOpenFailed(static_cast<int>(frame.U32(proto::Tag::kErrno).value_or(0)),
                               frame.Text(proto::Tag::kText).value_or(""));
}

void ControlSession::OnLinkUnsupported(uint8_t /*type*/) { gw_.metrics().unsupported_frames.Add(); }

// Counts and logs how the link ended, then lets the stream go: gracefully where this end said
// its last word (ERROR, GOAWAY), at once where the agent is gone or not reading.
void ControlSession::OnLinkEnded(const proto::LinkEnd& end) {
  gw_.shard().timers().Cancel(timer_);
  switch (end.reason) {
    case proto::LinkEndReason::kBadProof:
      gw_.metrics().CountControl(AgentResult::kBadProof);
      LogEvent(LogLevel::kWarning, "hello_bad_proof",
               {Kv("agent", agent_id_), Kv("remote", remote())});
      break;
    case proto::LinkEndReason::kTimeout:
      if (end.established) {
        gw_.metrics().heartbeat_timeouts.Add();
        LogEvent(LogLevel::kWarning, "heartbeat_timeout",
                 {Kv("agent", agent_id_), Kv("detail", end.detail)});
      } else {
        gw_.metrics().CountControl(AgentResult::kTimeout);
      }
      break;
    case proto::LinkEndReason::kProtocol:
      if (auto reject = RejectFor(*end.sent)) {
        gw_.metrics().CountFrameReject(*reject);
      }
      if (end.sent == proto::ErrorCode::kBadMac) {
        LogEvent(LogLevel::kWarning, "control_frame_bad_mac",
                 {Kv("agent", agent_id_), Kv("remote", remote())});
      }
      break;
    case proto::LinkEndReason::kPeerError:
      LogEvent(LogLevel::kWarning, "agent_error",
               {Kv("agent", agent_id_), Kv("detail", end.detail)});
      stream_->Close(0);
      return;
    case proto::LinkEndReason::kPeerClosed:
    case proto::LinkEndReason::kTransport:
      stream_->Close(0);
      return;
    case proto::LinkEndReason::kNotReading:
      // Answers (PONG, UNSUPPORTED) pile up only for an agent that sends and never reads; no
      // honest agent does, and the gateway must not buffer for it without bound.
      LogEvent(LogLevel::kWarning, "control_not_reading",
               {Kv("agent", agent_id_), Kv("remote", remote())});
      gw_.metrics().CountFrameReject(FrameReject::kUnexpected);
      stream_->Close(ENOBUFS);
      return;
    default:
      break;
  }
  stream_->Finish();
}

void ControlSession::ArmTimer(int64_t due_us) {
  if (due_us < 0) {
    return;
  }
  gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), runtime::MsUntil(due_us));
}

// The HELLO deadline, then the heartbeats (the rule is proto/control_link.h's).
void ControlSession::OnTimer() { ArmTimer(link_.Tick(MonotonicUs())); }

void ControlSession::OnStreamEof(runtime::Stream& /*stream*/) {
  // The agent closed its side: the session is over.
  link_.PeerClosed("agent closed the control connection");
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
