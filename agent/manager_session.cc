// See manager_session.h. Mirrors control_session.cc (same framing, heartbeats and re-entrancy
// rules); the differences are the credential (the agent secret, not a gateway key) and the
// frames it acts on.
#include "agent/manager_session.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "agent/log.h"
#include "proto/upgrade.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;

constexpr uint32_t kMinHeartbeatMs = 100;
constexpr uint32_t kMaxHeartbeatMs = 600000;
constexpr size_t kMaxPendingOutput = 64 * 1024;
constexpr std::string_view kVersion = "camtunnel-agent/0.1.0";

}  // namespace

ManagerSession::ManagerSession(EventLoop& loop, TransportFactory& factory,
                               const GatewayTarget& target, const Identity& identity,
                               Delegate& delegate, int64_t handshake_deadline_ms)
    : loop_(loop),
      factory_(factory),
      target_(target),
      identity_(identity),
      delegate_(delegate),
      handshake_deadline_ms_(handshake_deadline_ms),
      seal_key_(proto::KeySealKey(identity.secret, identity.agent_id)) {}

ManagerSession::~ManagerSession() {
  Close();
  OPENSSL_cleanse(seal_key_.data(), seal_key_.size());
}

void ManagerSession::Start() {
  state_ = State::kDialing;
  proto::RandomBytes(agent_nonce_);
  handshake_timer_.Start(loop_, handshake_deadline_ms_, [this] {
    End({.detail = "manager handshake not complete within " +
                   std::to_string(handshake_deadline_ms_) + " ms"});
  });
  dialer_ = std::make_unique<GatewayDialer>(loop_, factory_, target_);
  dialer_->Start(
      [this](Transport&) {
        return proto::BuildManagerRequest(target_.host_header, identity_.agent_id, agent_nonce_);
      },
      [this](DialOutcome outcome, std::unique_ptr<Transport> transport,
             const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
        OnDialed(std::move(outcome), std::move(transport), head, leftover);
      });
}

void ManagerSession::OnDialed(DialOutcome outcome, std::unique_ptr<Transport> transport,
                              const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
  if (outcome.kind == DialOutcome::Kind::kUpgraded) {
    dialer_.reset();
    transport_ = std::move(transport);
    if (Begin(*head) && Feed(leftover)) {
      Pump();
    }
    return;
  }
  End({.reason = outcome.status == 401 || outcome.status == 403 ? ManagerLinkEnd::Reason::kRejected
                                                                : ManagerLinkEnd::Reason::kFailed,
       .detail = "manager: " + DescribeOutcome(outcome)});
}

bool ManagerSession::Begin(const proto::ResponseHead& head) {
  auto accept = proto::ParseControlAccept(head);
  if (!accept) {
    End({.detail = "manager 101 without a valid Camtunnel-Nonce/Camtunnel-Proof"});
    return false;
  }
  // The transport must be the one the manager URL names: an https manager is never spoken to
  // in plain (no downgrade by the agent itself), and a TLS link needs its exporter.
  const proto::Transport kind = transport_->kind();
  const proto::Transport wanted =
      target_.url.starts_with("https://") ? proto::Transport::kTls : proto::Transport::kPlain;
  std::vector<uint8_t> exporter;
  if (kind == proto::Transport::kTls) {
    exporter = transport_->Exporter();
  }
  if (kind != wanted ||
      (kind == proto::Transport::kTls && exporter.size() != proto::kExporterBytes)) {
    End({.detail = "manager link transport does not match " + target_.url +
                   " (or no TLS keying material exporter)"});
    return false;
  }
  const proto::ManagerProofInput in{.agent_id = identity_.agent_id,
                                    .agent_nonce = agent_nonce_,
                                    .manager_nonce = accept->gateway_nonce,
                                    .transport = kind,
                                    .exporter = exporter};
  if (!proto::ConstantTimeEqual(proto::ManagerProof(identity_.secret, in), accept->gateway_proof)) {
    End({.reason = ManagerLinkEnd::Reason::kBadProof,
         .detail = "manager proof mismatch: this is not our manager, or it lost our secret"});
    return false;
  }
  if (kind == proto::Transport::kPlain) {
    // Section 10.2: MACs from HELLO on (sequence 0 each way), keyed from S and both nonces.
    proto::Digest session_key =
        proto::ManagerSessionKey(identity_.secret, agent_nonce_, accept->gateway_nonce);
    sealer_.emplace(session_key, proto::Direction::kAgentToGateway);
    opener_.emplace(session_key, proto::Direction::kGatewayToAgent);
    OPENSSL_cleanse(session_key.data(), session_key.size());
  }
  state_ = State::kAwaitWelcome;
  last_rx_ms_ = last_tx_ms_ = EventLoop::NowMs();
  watch_.Start(loop_, transport_->fd(), POLLIN, [this](short) { Pump(); });
  FrameBuilder hello(FrameType::kHello);
  hello.Add(Tag::kProof, proto::ManagerAgentProof(identity_.secret, in))
      .AddU32(Tag::kCapabilities, proto::kCapPlainFrameMac)
      .AddText(Tag::kVersion, kVersion);
  Send(hello);
  return state_ != State::kClosed;
}

void ManagerSession::Send(FrameBuilder& frame) {
  if (state_ == State::kClosed || !transport_) {
    return;
  }
  std::vector<uint8_t> bytes = sealer_ ? sealer_->Seal(frame) : frame.Finish();
  if (out_.size() + bytes.size() > kMaxPendingOutput) {
    End({.detail = "manager is not reading"});
    return;
  }
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  last_tx_ms_ = EventLoop::NowMs();
  Pump();
}

void ManagerSession::SendStatus(std::string_view text) {
  if (state_ != State::kEstablished) {
    return;
  }
  FrameBuilder status(FrameType::kStatus);
  status.AddText(Tag::kText, text.substr(0, proto::kMaxStatusText));
  Send(status);
}

void ManagerSession::Fail(proto::ErrorCode code, std::string detail) {
  FrameBuilder error(FrameType::kError);
  error.AddU16(Tag::kErrorCode, static_cast<uint16_t>(code)).AddText(Tag::kText, detail);
  Send(error);
  End({.detail = std::move(detail)});
}

void ManagerSession::Pump() {
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
      End({.detail = st == IoStatus::kEof ? "manager closed the link" : transport_->error_text()});
    } else {
      read_wait_ = st;
    }
  }
  --pump_depth_;
  if (state_ != State::kClosed) {
    watch_.SetEvents(static_cast<short>(PollEventsFor(read_wait_) | PollEventsFor(write_wait_)));
  }
}

bool ManagerSession::Feed(std::span<const uint8_t> bytes) {
  while (!bytes.empty() && state_ != State::kClosed) {
    proto::Frame frame;
    const proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
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

bool ManagerSession::HandleFrame(proto::Frame& frame) {
  const std::string name(proto::FrameTypeName(frame.type()));
  if (opener_ && !opener_->Open(frame)) {
    // Plain link: someone on the path is injecting, replaying or reordering frames. Nothing in
    // this frame is acted on (not even an ERROR: its text could be anyone's).
    Fail(proto::ErrorCode::kBadMac, "bad MAC on " + name + " from the manager");
    return false;
  }
  if (!frame.Valid()) {
    Fail(proto::ErrorCode::kMalformedFrame, "malformed " + name);
    return false;
  }
  last_rx_ms_ = EventLoop::NowMs();
  const auto type = static_cast<FrameType>(frame.type());
  if (type == FrameType::kError) {
    const uint16_t code = frame.U16(Tag::kErrorCode).value_or(0);
    End({.reason = code == static_cast<uint16_t>(proto::ErrorCode::kBadProof)
                       ? ManagerLinkEnd::Reason::kRejected
                       : ManagerLinkEnd::Reason::kFailed,
         .detail = "manager sent ERROR code=" + std::to_string(code) +
                   " text=" + std::string(frame.Text(Tag::kText).value_or(""))});
    return false;
  }
  if (state_ == State::kAwaitWelcome) {
    if (type != FrameType::kWelcome) {
      Fail(proto::ErrorCode::kUnexpectedFrame, "expected WELCOME, got " + name);
      return false;
    }
    const uint32_t hb = frame.U32(Tag::kHeartbeatMs).value_or(0);
    heartbeat_ms_ = std::clamp(hb != 0 ? hb : 5000u, kMinHeartbeatMs, kMaxHeartbeatMs);
    state_ = State::kEstablished;
    handshake_timer_.Cancel();
    heartbeat_timer_.Start(loop_, heartbeat_ms_, [this] { OnHeartbeat(); });
    LOG_INFO("manager linked url=%s agent=%s transport=%s", target_.url.c_str(),
             identity_.agent_id.c_str(), plain() ? "plain" : "tls");
    delegate_.OnManagerWelcome(frame.U64(Tag::kServerTimeMs).value_or(0));
    return state_ != State::kClosed;
  }
  switch (type) {
    case FrameType::kPing: {
      FrameBuilder pong(FrameType::kPong);
      pong.AddU64(Tag::kSequence, frame.U64(Tag::kSequence).value_or(0));
      Send(pong);
      break;
    }
    case FrameType::kAssign: {
      std::string error;
      auto list = proto::ParseAssign(seal_key_, identity_.agent_id, frame, &error);
      if (!list) {
        // The previous list stays in force: a bad ASSIGN never half-applies.
        Fail(proto::ErrorCode::kMalformedFrame, error);
        return false;
      }
      delegate_.OnAssign(std::move(*list));
      break;
    }
    case FrameType::kSwitch: {
      auto url = frame.Text(Tag::kRedirect);
      if (!url || !proto::IsValidStreamerUrl(*url)) {
        Fail(proto::ErrorCode::kMalformedFrame, "SWITCH needs a redirect URL");
        return false;
      }
      delegate_.OnSwitch(*url);
      break;
    }
    case FrameType::kDeactivate:
    case FrameType::kRestart: {
      const std::string reason(frame.Text(Tag::kText).value_or(""));
      End({.reason = ManagerLinkEnd::Reason::kCommand, .detail = name + ": " + reason});
      if (type == FrameType::kDeactivate) {
        delegate_.OnDeactivate(reason);
      } else {
        delegate_.OnRestart(reason);
      }
      return false;
    }
    case FrameType::kGoaway:
      End({.detail = "manager GOAWAY " + std::string(frame.Text(Tag::kText).value_or(""))});
      return false;
    case FrameType::kPong:
    case FrameType::kUnsupported:
    case FrameType::kWelcome:
      break;
    default: {
      FrameBuilder unsupported(FrameType::kUnsupported);
      unsupported.AddU8(Tag::kFrameType, frame.type());
      Send(unsupported);
      break;
    }
  }
  return state_ != State::kClosed;
}

void ManagerSession::OnHeartbeat() {
  const int64_t now = EventLoop::NowMs();
  const int64_t interval = heartbeat_ms_;
  if (now - last_rx_ms_ >= 2 * interval) {
    Fail(proto::ErrorCode::kTimeout, "manager silent for two heartbeat intervals");
    return;
  }
  if (now - last_tx_ms_ >= interval) {
    FrameBuilder ping(FrameType::kPing);
    ping.AddU64(Tag::kSequence, next_ping_++);
    Send(ping);
    if (state_ == State::kClosed) {
      return;
    }
  }
  const int64_t next = std::min(last_tx_ms_ + interval, last_rx_ms_ + 2 * interval);
  heartbeat_timer_.Start(loop_, std::max<int64_t>(next - EventLoop::NowMs(), 1),
                         [this] { OnHeartbeat(); });
}

void ManagerSession::End(ManagerLinkEnd end) {
  if (state_ == State::kClosed) {
    return;
  }
  end.welcomed = state_ == State::kEstablished;
  Close();
  pending_end_ = std::move(end);
  end_timer_.Start(loop_, 0, [this] {
    ManagerLinkEnd ended = std::move(*pending_end_);
    delegate_.OnManagerLinkEnded(ended);  // may destroy this session
  });
}

void ManagerSession::Close() {
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  handshake_timer_.Cancel();
  heartbeat_timer_.Cancel();
  watch_.Stop();
  dialer_.reset();
  if (transport_) {
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
