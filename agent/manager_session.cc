// See manager_session.h. Mirrors control_session.cc (same framing, heartbeats and re-entrancy
// rules); the differences are the credential (the agent secret, not a gateway key) and the
// frames it acts on.
#include "agent/manager_session.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "agent/identity.h"
#include "agent/log.h"
#include "proto/manager_command.h"
#include "proto/upgrade.h"

namespace camtunnel::agent {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;

int64_t NowUs() { return LinkIo::NowUs(); }

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
      seal_key_(proto::KeySealKey(identity.secret, identity.agent_id)),
      profile_{.role = proto::LinkRole::kAgent,
               .kind = proto::LinkKind::kManager,
               .capabilities = proto::kCapPlainFrameMac | proto::kCapCommandAck,
               .version = kAgentVersion} {}

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
  dialer_ = std::make_unique<UpgradeDialer>(loop_, factory_, target_);
  dialer_->Start(
      [this](Transport&) {
        return proto::BuildManagerRequest(target_.host_header, identity_.agent_id, agent_nonce_);
      },
      [this](const DialOutcome& outcome, std::unique_ptr<Transport> transport,
             const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
        OnDialed(outcome, std::move(transport), head, leftover);
      });
}

void ManagerSession::OnDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                              const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
  if (outcome.kind == DialOutcome::Kind::kUpgraded) {
    dialer_.reset();
    io_.Attach(std::move(transport));
    if (Begin(*head)) {
      link_.Receive(leftover, NowUs());
      io_.Pump();
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
  const proto::Transport kind = io_.transport()->kind();
  const proto::Transport wanted =
      target_.url.starts_with("https://") ? proto::Transport::kTls : proto::Transport::kPlain;
  std::vector<uint8_t> exporter;
  if (kind == proto::Transport::kTls) {
    exporter = io_.transport()->Exporter();
  }
  if (kind != wanted ||
      (kind == proto::Transport::kTls && exporter.size() != proto::kExporterBytes)) {
    End({.detail = "manager link transport does not match " + target_.url +
                   " (or no TLS keying material exporter)"});
    return false;
  }
  link_.BeginAgent({.agent_id = identity_.agent_id, .key = &identity_.secret}, agent_nonce_,
                   accept->gateway_nonce, accept->gateway_proof, kind, exporter, {}, NowUs());
  if (state_ == State::kClosed) {
    return false;
  }
  state_ = State::kAwaitWelcome;
  return true;
}

void ManagerSession::SendStatus(std::string_view text) {
  if (state_ != State::kEstablished) {
    return;
  }
  FrameBuilder status(FrameType::kStatus);
  status.AddText(Tag::kText, text.substr(0, proto::kMaxStatusText));
  link_.Send(status, NowUs());
  io_.Pump();
}

void ManagerSession::OnLinkEstablished(const proto::LinkWelcome& welcome) {
  state_ = State::kEstablished;
  handshake_timer_.Cancel();
  io_.ArmHeartbeat();
  LOG_INFO("manager linked url=%s agent=%s transport=%s", target_.url.c_str(),
           identity_.agent_id.c_str(), plain() ? "plain" : "tls");
  delegate_.OnManagerWelcome(welcome);
}

void ManagerSession::Ack(uint64_t command_id, std::string_view outcome) {
  FrameBuilder ack = proto::BuildAck(command_id, outcome);
  link_.Send(ack, NowUs());
  io_.Pump();
}

void ManagerSession::OnLinkFrame(const proto::Frame& frame) {
  const auto type = static_cast<FrameType>(frame.type());
  // A command delivered again (the manager did not see our ACK before a link was lost) is
  // acknowledged, not redone: a RESTART delivered twice restarts once (PROTOCOL.md 10.6).
  const uint64_t command_id = type == FrameType::kAssign ? 0 : proto::CommandIdOf(frame);
  if (command_id != 0 && !delegate_.TakeCommand(command_id)) {
    LOG_INFO("manager command %s id=%llu already done",
             std::string(proto::FrameTypeName(frame.type())).c_str(),
             static_cast<unsigned long long>(command_id));
    Ack(command_id, proto::kAckDuplicate);
    return;
  }
  switch (type) {
    case FrameType::kAssign: {
      std::string error;
      auto list = proto::ParseAssign(seal_key_, identity_.agent_id, frame, &error);
      if (!list) {
        // The previous list stays in force: a bad ASSIGN never half-applies.
        link_.Fail(proto::ErrorCode::kMalformedFrame, error, NowUs());
        return;
      }
      delegate_.OnAssign(std::move(*list));
      return;
    }
    case FrameType::kSwitch: {
      auto url = frame.Text(Tag::kRedirect);
      if (!url || !proto::IsValidStreamerUrl(*url)) {
        link_.Fail(proto::ErrorCode::kMalformedFrame, "SWITCH needs a redirect URL", NowUs());
        return;
      }
      delegate_.OnSwitch(*url);
      if (command_id != 0) {
        Ack(command_id, proto::kAckDone);
      }
      return;
    }
    default: {  // DEACTIVATE or RESTART: acknowledged, the link ends, then the delegate acts
      const std::string reason(frame.Text(Tag::kText).value_or(""));
      if (command_id != 0) {
        Ack(command_id, proto::kAckDone);
      }
      ended_by_command_ = true;
      link_.Close(std::string(proto::FrameTypeName(frame.type())) + ": " + reason);
      if (type == FrameType::kDeactivate) {
        delegate_.OnDeactivate(reason);
      } else {
        delegate_.OnRestart(reason);
      }
      return;
    }
  }
}

void ManagerSession::OnLinkEnded(const proto::LinkEnd& end) {
  ManagerLinkEnd link_end{.detail = end.detail};
  switch (end.reason) {
    case proto::LinkEndReason::kGoaway:
      link_end.detail = "manager GOAWAY " + end.peer_text;
      break;
    case proto::LinkEndReason::kProtocol:
    case proto::LinkEndReason::kTimeout:
      link_end.silent = end.reason == proto::LinkEndReason::kTimeout;
      link_end.detail += " from the manager";
      break;
    case proto::LinkEndReason::kBadProof:
      link_end.reason = ManagerLinkEnd::Reason::kBadProof;
      break;
    case proto::LinkEndReason::kPeerError:
      if (end.peer_code == static_cast<uint16_t>(proto::ErrorCode::kBadProof)) {
        link_end.reason = ManagerLinkEnd::Reason::kRejected;
      }
      link_end.detail = "manager sent " + end.detail;
      break;
    case proto::LinkEndReason::kClosedHere:
      if (ended_by_command_) {
        link_end.reason = ManagerLinkEnd::Reason::kCommand;
        link_end.detail = end.detail;
      }
      break;
    default:
      break;
  }
  End(std::move(link_end));
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
  dialer_.reset();
  io_.Close();
}

}  // namespace camtunnel::agent
