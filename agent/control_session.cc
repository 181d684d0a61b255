// See control_session.h.
#include "agent/control_session.h"

#include <openssl/crypto.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/log.h"
#include "agent/resolver.h"
#include "proto/encoding.h"
#include "proto/upgrade.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;

// A WELCOME may tune the heartbeat, within sane bounds: below 100 ms a camera would spend its
// uplink on PINGs; above 10 minutes NAT mappings expire long before a dead session is noticed.
constexpr uint32_t kMinHeartbeatMs = 100;
constexpr uint32_t kMaxHeartbeatMs = 600000;
constexpr uint32_t kMaxReconnectWindowMs = 600000;
// Control frames are small; a gateway that lets this much queue up is not reading.
constexpr size_t kMaxPendingOutput = 64 * 1024;

}  // namespace

std::string_view SessionEndName(SessionEnd::Reason reason) {
  constexpr std::string_view kNames[] = {"busy", "auth-rejected", "bad-gateway-proof", "goaway",
                                         "failed"};
  return kNames[static_cast<int>(reason)];
}

ControlSession::ControlSession(EventLoop& loop, TransportFactory& factory,
                               const GatewayTarget& target, const AgentIdentity& identity,
                               Delegate& delegate, SessionTimings timings)
    : loop_(loop),
      factory_(factory),
      target_(target),
      identity_(identity),
      delegate_(delegate),
      timings_(timings) {}

ControlSession::~ControlSession() { Close(); }

void ControlSession::Start() {
  state_ = State::kDialing;
  proto::RandomBytes(agent_nonce_);
  handshake_timer_.Start(loop_, timings_.handshake_deadline_ms, [this] {
    End({.reason = SessionEnd::Reason::kBusy,
         .detail = "handshake not complete within " +
                   std::to_string(timings_.handshake_deadline_ms) + " ms"});
  });
  dialer_ = std::make_unique<GatewayDialer>(loop_, factory_, target_);
  dialer_->Start(
      [this](Transport&) {
        return proto::BuildControlRequest(target_.host_header, identity_.agent_id,
                                          identity_.key_ref, agent_nonce_);
      },
      [this](DialOutcome outcome, std::unique_ptr<Transport> transport,
             const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
        OnDialed(std::move(outcome), std::move(transport), head, leftover);
      });
}

void ControlSession::OnDialed(DialOutcome outcome, std::unique_ptr<Transport> transport,
                              const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
  if (outcome.kind == DialOutcome::Kind::kUpgraded) {
    // The dialer calls us last and `head`/`leftover` live in its caller's frame, so it may go
    // now (its buffers are not needed for the rest of the session).
    dialer_.reset();
    transport_ = std::move(transport);
    if (BeginSession(*head) && Feed(leftover)) {
      Pump();
    }
    return;
  }
  SessionEnd end{.retry_after_ms = outcome.retry_after_ms, .detail = DescribeOutcome(outcome)};
  if (outcome.kind == DialOutcome::Kind::kClosedEarly || outcome.status == 503) {
    end.reason = SessionEnd::Reason::kBusy;
  } else if (outcome.status == 401 || outcome.status == 403) {
    end.reason = SessionEnd::Reason::kAuthRejected;
  }
  End(std::move(end));
}

// Checks the gateway's proof and, if it holds, sends HELLO. False if the session ended.
bool ControlSession::BeginSession(const proto::ResponseHead& head) {
  auto accept = proto::ParseControlAccept(head);
  if (!accept) {
    End({.detail = "101 without a valid Camtunnel-Nonce/Camtunnel-Proof"});
    return false;
  }
  std::vector<uint8_t> exporter = transport_->Exporter();
  const proto::Transport kind = transport_->kind();
  if (kind == proto::Transport::kTls && exporter.size() != proto::kExporterBytes) {
    End({.detail = "no TLS keying material exporter"});
    return false;
  }
  proto::HandshakeProofInput input{.agent_id = identity_.agent_id,
                                   .key_ref = &identity_.key_ref,
                                   .agent_nonce = agent_nonce_,
                                   .gateway_nonce = accept->gateway_nonce,
                                   .transport = kind,
                                   .exporter = exporter};
  proto::Digest expected = proto::GatewayProof(identity_.agent_key, input);
  if (!proto::ConstantTimeEqual(expected, accept->gateway_proof)) {
    // Not sending HELLO: a party without our key must learn nothing it could replay.
    End({.reason = SessionEnd::Reason::kBadGatewayProof,
         .detail = "gateway proof mismatch: the gateway does not hold this agent's key (wrong "
                   "--key-file/--key-ref, or not our gateway)"});
    return false;
  }
  if (kind == proto::Transport::kPlain) {
    proto::Digest session_key =
        proto::SessionKey(identity_.agent_key, agent_nonce_, accept->gateway_nonce);
    sealer_.emplace(session_key, proto::Direction::kAgentToGateway);
    opener_.emplace(session_key, proto::Direction::kGatewayToAgent);
    OPENSSL_cleanse(session_key.data(), session_key.size());
  }
  proto::Digest proof = proto::AgentProof(identity_.agent_key, input);
  state_ = State::kAwaitWelcome;
  last_rx_ms_ = last_tx_ms_ = EventLoop::NowMs();
  watch_.Start(loop_, transport_->fd(), POLLIN, [this](short) { Pump(); });
  FrameBuilder hello(FrameType::kHello);
  hello.Add(Tag::kProof, proof)
      .AddU32(Tag::kCapabilities, proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno |
                                      proto::kCapSpareData | proto::kCapSpareEarlyData)
      .AddText(Tag::kVersion, kAgentVersion);
  for (const auto& service : identity_.services) {
    hello.AddText(Tag::kService, proto::FormatServiceEntry(service));
  }
  SendFrame(hello);
  LOG_DEBUG("control: upgraded, gateway proof verified, HELLO sent (%zu services)",
            identity_.services.size());
  return state_ != State::kClosed;
}

void ControlSession::SendFrame(FrameBuilder& frame) {
  if (state_ == State::kClosed || !transport_) {
    return;
  }
  std::vector<uint8_t> bytes = sealer_ ? sealer_->Seal(frame) : frame.Finish();
  if (out_.size() + bytes.size() > kMaxPendingOutput) {
    End({.detail = "gateway is not reading control frames"});
    return;
  }
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  last_tx_ms_ = EventLoop::NowMs();
  Pump();
}

void ControlSession::Fail(proto::ErrorCode code, std::string detail) {
  FrameBuilder error(FrameType::kError);
  error.AddU16(Tag::kErrorCode, static_cast<uint16_t>(code)).AddText(Tag::kText, detail);
  SendFrame(error);
  End({.detail = std::move(detail)});
}

void ControlSession::SendOpenFailed(proto::TunnelId tunnel, int error, std::string_view text) {
  if (state_ != State::kEstablished) {
    LOG_DEBUG("control: OPEN_FAILED for tunnel %s dropped: no session",
              proto::FormatTunnelId(tunnel).c_str());
    return;
  }
  FrameBuilder frame(FrameType::kOpenFailed);
  frame.AddText(Tag::kTunnelId, proto::FormatTunnelId(tunnel))
      .AddU32(Tag::kErrno, static_cast<uint32_t>(error))
      .AddText(Tag::kText, text.substr(0, 256));
  SendFrame(frame);
}

// Writes what is queued and reads what has arrived, until the socket would block. Re-entrant
// calls (a frame handler sending a frame) only write: the outer call keeps reading.
void ControlSession::Pump() {
  if (state_ == State::kClosed || state_ == State::kDialing) {
    return;
  }
  ++pump_depth_;
  bool progress = true;
  while (progress && state_ != State::kClosed) {
    progress = false;
    write_wait_ = IoStatus::kOk;
    while (!out_.empty()) {
      size_t n = 0;
      IoStatus st = transport_->Write(out_, &n);
      if (st == IoStatus::kOk) {
        out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(n));
        continue;
      }
      if (st == IoStatus::kError) {
        End({.detail = transport_->error_text()});
      } else {
        write_wait_ = st;
      }
      break;
    }
    if (pump_depth_ > 1 || state_ == State::kClosed) {
      break;
    }
    uint8_t buf[4096];
    size_t n = 0;
    IoStatus st = transport_->Read(buf, &n);
    read_wait_ = IoStatus::kOk;
    if (st == IoStatus::kOk && n > 0) {
      progress = Feed(std::span<const uint8_t>(buf, n));
    } else if (st == IoStatus::kEof || st == IoStatus::kError) {
      // A close before WELCOME is the gateway shedding load ("busy, back off").
      End({.reason = state_ == State::kEstablished ? SessionEnd::Reason::kFailed
                                                   : SessionEnd::Reason::kBusy,
           .detail = st == IoStatus::kEof ? "gateway closed the control connection"
                                          : transport_->error_text()});
    } else {
      read_wait_ = st;
    }
  }
  --pump_depth_;
  UpdateInterest();
}

void ControlSession::UpdateInterest() {
  if (state_ != State::kClosed) {
    watch_.SetEvents(static_cast<short>(PollEventsFor(read_wait_) | PollEventsFor(write_wait_)));
  }
}

// Decodes and handles every complete frame in `bytes`. False if the session ended.
bool ControlSession::Feed(std::span<const uint8_t> bytes) {
  while (!bytes.empty() && state_ != State::kClosed) {
    proto::Frame frame;
    proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
    if (st == proto::DecodeStatus::kNeedMore) {
      break;
    }
    if (st == proto::DecodeStatus::kTooLarge) {
      Fail(proto::ErrorCode::kFrameTooLarge, "frame too large");
      return false;
    }
    if (!HandleFrame(frame)) {
      return false;
    }
  }
  return state_ != State::kClosed;
}

bool ControlSession::HandleFrame(proto::Frame& frame) {
  const std::string name(proto::FrameTypeName(frame.type()));
  if (opener_ && !opener_->Open(frame)) {
    // Plain mode: someone on the path is injecting or replaying frames.
    Fail(proto::ErrorCode::kBadMac, "bad MAC on " + name);
    return false;
  }
  if (!frame.Valid()) {
    Fail(proto::ErrorCode::kMalformedFrame, "malformed " + name);
    return false;
  }
  last_rx_ms_ = EventLoop::NowMs();
  const auto type = static_cast<FrameType>(frame.type());
  if (type == FrameType::kError) {
    uint16_t code = frame.U16(Tag::kErrorCode).value_or(0);
    std::string text(frame.Text(Tag::kText).value_or(""));
    End({.reason = code == static_cast<uint16_t>(proto::ErrorCode::kBadProof)
                       ? SessionEnd::Reason::kAuthRejected
                       : SessionEnd::Reason::kFailed,
         .detail = "gateway sent ERROR code=" + std::to_string(code) + " text=" + text});
    return false;
  }
  if (state_ == State::kAwaitWelcome) {
    if (type != FrameType::kWelcome) {
      Fail(proto::ErrorCode::kUnexpectedFrame, "expected WELCOME, got " + name);
      return false;
    }
    HandleWelcome(frame);
    return state_ != State::kClosed;
  }
  switch (type) {
    case FrameType::kPing: {
      FrameBuilder pong(FrameType::kPong);
      pong.AddU64(Tag::kSequence, frame.U64(Tag::kSequence).value_or(0));
      SendFrame(pong);
      break;
    }
    case FrameType::kPong: {
      uint64_t seq = frame.U64(Tag::kSequence).value_or(0);
      if (seq == outstanding_ping_seq_ && seq != 0) {
        LOG_DEBUG("control: PONG rtt=%lld ms",
                  static_cast<long long>(EventLoop::NowMs() - outstanding_ping_ms_));
        outstanding_ping_seq_ = 0;
      }
      break;
    }
    case FrameType::kOpen:
      HandleOpen(frame);
      break;
    case FrameType::kSpare:
      HandleSpare(frame);
      break;
    case FrameType::kGoaway: {
      int64_t after = frame.U32(Tag::kReconnectAfterMs).value_or(0);
      std::string text(frame.Text(Tag::kText).value_or(""));
      if (auto redirect = frame.Text(Tag::kRedirect)) {
        // TODO: follow a redirect once the manager protocol (ASSIGN) can vouch for the target;
        // until then a redirect from the gateway alone is not trusted.
        LOG_WARNING("control: GOAWAY redirect to %.*s ignored (only the manager may redirect)",
                    static_cast<int>(redirect->size()), redirect->data());
      }
      End({.reason = SessionEnd::Reason::kGoaway,
           .retry_after_ms = after,
           .detail = "GOAWAY reason=" + text + " reconnect_after_ms=" + std::to_string(after)});
      return false;
    }
    case FrameType::kUnsupported:  // known types we do not act on from a gateway
    case FrameType::kWelcome:
    case FrameType::kHello:
    case FrameType::kStatus:
    case FrameType::kOpenFailed:
      LOG_DEBUG("control: ignoring %s from the gateway", name.c_str());
      break;
    default: {
      // Unknown types and the manager-only frames get UNSUPPORTED; the session stays up.
      FrameBuilder unsupported(FrameType::kUnsupported);
      unsupported.AddU8(Tag::kFrameType, frame.type());
      SendFrame(unsupported);
      break;
    }
  }
  return state_ != State::kClosed;
}

std::string ControlSession::peer_host() const {
  if (!transport_) {
    return {};
  }
  SocketAddress peer;
  peer.length = sizeof(peer.storage);
  if (::getpeername(transport_->fd(), reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) !=
      0) {
    return {};
  }
  return peer.HostText();
}

void ControlSession::HandleWelcome(const proto::Frame& frame) {
  Welcome welcome;
  welcome.heartbeat_ms =
      std::clamp(frame.U32(Tag::kHeartbeatMs).value_or(0) != 0 ? *frame.U32(Tag::kHeartbeatMs)
                                                               : timings_.default_heartbeat_ms,
                 kMinHeartbeatMs, kMaxHeartbeatMs);
  welcome.server_time_ms = frame.U64(Tag::kServerTimeMs).value_or(0);
  welcome.reconnect_window_ms =
      std::min(frame.U32(Tag::kReconnectWindowMs).value_or(0), kMaxReconnectWindowMs);
  state_ = State::kEstablished;
  handshake_timer_.Cancel();
  heartbeat_ms_ = welcome.heartbeat_ms;
  heartbeat_timer_.Start(loop_, heartbeat_ms_, [this] { OnHeartbeatTick(); });
  LOG_INFO("connected gateway=%s agent=%s", target_.url.c_str(), identity_.agent_id.c_str());
  if (transport_->kernel_tls_send()) {
    LOG_INFO("kernel TLS: the kernel encrypts what this agent sends (--no-kernel-tls to stop)");
  }
  LOG_DEBUG("control: WELCOME heartbeat_ms=%u reconnect_window_ms=%u server_time_ms=%llu",
            welcome.heartbeat_ms, welcome.reconnect_window_ms,
            static_cast<unsigned long long>(welcome.server_time_ms));
  delegate_.OnWelcome(welcome);
}

void ControlSession::HandleOpen(const proto::Frame& frame) {
  const std::optional<proto::TunnelFields> open = proto::ReadOpen(frame);
  if (!open) {
    Fail(proto::ErrorCode::kMalformedFrame, "OPEN needs tunnel_id, service_name and nonce");
    return;
  }
  delegate_.OnOpen(open->tunnel, open->service, open->nonce);
}

void ControlSession::HandleSpare(const proto::Frame& frame) {
  const std::optional<proto::TunnelFields> spare = proto::ReadSpare(frame);
  if (!spare) {
    Fail(proto::ErrorCode::kMalformedFrame, "SPARE needs tunnel_id and nonce");
    return;
  }
  delegate_.OnSpare(spare->tunnel, spare->nonce);
}

// Sends PING when nothing else was sent for an interval; declares the session dead after two
// intervals without any frame received. Re-armed for the earlier of the two deadlines.
void ControlSession::OnHeartbeatTick() {
  const int64_t now = EventLoop::NowMs();
  const int64_t interval = heartbeat_ms_;
  if (now - last_rx_ms_ >= 2 * interval) {
    Fail(proto::ErrorCode::kTimeout, "no frame for " + std::to_string(now - last_rx_ms_) + " ms");
    return;
  }
  if (now - last_tx_ms_ >= interval) {
    FrameBuilder ping(FrameType::kPing);
    outstanding_ping_seq_ = next_ping_seq_++;
    outstanding_ping_ms_ = now;
    ping.AddU64(Tag::kSequence, outstanding_ping_seq_);
    SendFrame(ping);
    if (state_ == State::kClosed) {
      return;
    }
  }
  int64_t next = std::min(last_tx_ms_ + interval, last_rx_ms_ + 2 * interval);
  heartbeat_timer_.Start(loop_, std::max<int64_t>(next - EventLoop::NowMs(), 1),
                         [this] { OnHeartbeatTick(); });
}

// Tears the connection down now and reports the end from the loop.
void ControlSession::End(SessionEnd end) {
  if (state_ == State::kClosed) {
    return;
  }
  end.welcomed = state_ == State::kEstablished;
  Close();
  pending_end_ = std::move(end);
  end_timer_.Start(loop_, 0, [this] {
    SessionEnd ended = std::move(*pending_end_);
    delegate_.OnSessionEnded(ended);  // may destroy this session
  });
}

void ControlSession::Close() {
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  handshake_timer_.Cancel();
  heartbeat_timer_.Cancel();
  watch_.Stop();
  dialer_.reset();
  if (transport_) {
    // Best effort, without waiting: push out a queued ERROR and a TLS close_notify.
    size_t n = 0;
    if (!out_.empty()) {
      transport_->Write(out_, &n);
    }
    if (n == out_.size()) {
      transport_->ShutdownWrite();
    }
    transport_.reset();
  }
  out_.clear();
}

}  // namespace camtunnel::agent
