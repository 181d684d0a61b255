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

int64_t NowUs() { return LinkIo::NowUs(); }

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
      timings_(timings),
      profile_{.role = proto::LinkRole::kAgent,
               .kind = proto::LinkKind::kGateway,
               .capabilities = proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno |
                               proto::kCapSpareData | proto::kCapSpareEarlyData,
               .heartbeat_ms = timings.default_heartbeat_ms,
               .version = kAgentVersion} {}

ControlSession::~ControlSession() { Close(); }

void ControlSession::Start() {
  state_ = State::kDialing;
  proto::RandomBytes(agent_nonce_);
  handshake_timer_.Start(loop_, timings_.handshake_deadline_ms, [this] {
    End({.reason = SessionEnd::Reason::kBusy,
         .detail = "handshake not complete within " +
                   std::to_string(timings_.handshake_deadline_ms) + " ms"});
  });
  dialer_ = std::make_unique<UpgradeDialer>(loop_, factory_, target_);
  dialer_->Start(
      [this](Transport&) {
        return proto::BuildControlRequest(target_.host_header, identity_.agent_id,
                                          identity_.key_ref, agent_nonce_);
      },
      [this](const DialOutcome& outcome, std::unique_ptr<Transport> transport,
             const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
        OnDialed(outcome, std::move(transport), head, leftover);
      });
}

void ControlSession::OnDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                              const proto::ResponseHead* head, std::span<const uint8_t> leftover) {
  if (outcome.kind == DialOutcome::Kind::kUpgraded) {
    // The dialer calls us last and `head`/`leftover` live in its caller's frame, so it may go
    // now (its buffers are not needed for the rest of the session).
    dialer_.reset();
    io_.Attach(std::move(transport));
    if (BeginSession(*head)) {
      link_.Receive(leftover, NowUs());
      io_.Pump();
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

bool ControlSession::BeginSession(const proto::ResponseHead& head) {
  auto accept = proto::ParseControlAccept(head);
  if (!accept) {
    End({.detail = "101 without a valid Camtunnel-Nonce/Camtunnel-Proof"});
    return false;
  }
  std::vector<uint8_t> exporter = io_.transport()->Exporter();
  const proto::Transport kind = io_.transport()->kind();
  if (kind == proto::Transport::kTls && exporter.size() != proto::kExporterBytes) {
    End({.detail = "no TLS keying material exporter"});
    return false;
  }
  std::vector<std::string> services;
  services.reserve(identity_.services.size());
  for (const auto& service : identity_.services) {
    services.push_back(proto::FormatServiceEntry(service));
  }
  link_.BeginAgent(
      {.agent_id = identity_.agent_id, .key = &identity_.agent_key, .key_ref = &identity_.key_ref},
      agent_nonce_, accept->gateway_nonce, accept->gateway_proof, kind,
      kind == proto::Transport::kTls ? std::span<const uint8_t>(exporter)
                                     : std::span<const uint8_t>(),
      services, NowUs());
  if (state_ == State::kClosed) {
    return false;
  }
  state_ = State::kAwaitWelcome;
  LOG_DEBUG("control: upgraded, gateway proof verified, HELLO sent (%zu services)",
            identity_.services.size());
  return true;
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
  link_.Send(frame, NowUs());
  io_.Pump();
}

void ControlSession::OnLinkFrame(const proto::Frame& frame) {
  if (frame.type() == static_cast<uint8_t>(FrameType::kOpen)) {
    const std::optional<proto::TunnelFields> open = proto::ReadOpen(frame);
    if (!open) {
      link_.Fail(proto::ErrorCode::kMalformedFrame, "OPEN needs tunnel_id, service_name and nonce",
                 NowUs());
      return;
    }
    delegate_.OnOpen(open->tunnel, open->service, open->nonce);
    return;
  }
  // SPARE: the only other frame a gateway link takes at the agent.
  const std::optional<proto::TunnelFields> spare = proto::ReadSpare(frame);
  if (!spare) {
    link_.Fail(proto::ErrorCode::kMalformedFrame, "SPARE needs tunnel_id and nonce", NowUs());
    return;
  }
  delegate_.OnSpare(spare->tunnel, spare->nonce);
}

std::string ControlSession::peer_host() const {
  if (io_.transport() == nullptr) {
    return {};
  }
  SocketAddress peer;
  peer.length = sizeof(peer.storage);
  if (::getpeername(io_.transport()->fd(), reinterpret_cast<sockaddr*>(&peer.storage),
                    &peer.length) != 0) {
    return {};
  }
  return peer.HostText();
}

void ControlSession::OnLinkEstablished(const proto::LinkWelcome& link_welcome) {
  state_ = State::kEstablished;
  handshake_timer_.Cancel();
  io_.ArmHeartbeat();
  LOG_INFO("connected gateway=%s agent=%s", target_.url.c_str(), identity_.agent_id.c_str());
  if (io_.transport()->kernel_tls_send()) {
    LOG_INFO("kernel TLS: the kernel encrypts what this agent sends (--no_kernel_tls to stop)");
  }
  const Welcome welcome{.heartbeat_ms = link_welcome.heartbeat_ms,
                        .server_time_ms = link_welcome.server_time_ms,
                        .reconnect_window_ms = link_welcome.reconnect_window_ms};
  LOG_DEBUG("control: WELCOME heartbeat_ms=%u reconnect_window_ms=%u server_time_ms=%llu",
            welcome.heartbeat_ms, welcome.reconnect_window_ms,
            static_cast<unsigned long long>(welcome.server_time_ms));
  delegate_.OnWelcome(welcome);
}

// How a link's end reads to the agent's reconnect policy (agent.cc).
void ControlSession::OnLinkEnded(const proto::LinkEnd& end) {
  using proto::LinkEndReason;
  SessionEnd session_end{.detail = end.detail};
  switch (end.reason) {
    case LinkEndReason::kBadProof:
      session_end.reason = SessionEnd::Reason::kBadGatewayProof;
      session_end.detail += " (wrong --key_file/--key_ref, or not our gateway)";
      break;
    case LinkEndReason::kPeerError:
      if (end.peer_code == static_cast<uint16_t>(proto::ErrorCode::kBadProof)) {
        session_end.reason = SessionEnd::Reason::kAuthRejected;
      }
      session_end.detail = "gateway sent " + end.detail;
      break;
    case LinkEndReason::kGoaway:
      if (!end.redirect.empty()) {
        // TODO: follow a redirect once the manager protocol (ASSIGN) can vouch for the target;
        // until then a redirect from the gateway alone is not trusted.
        LOG_WARNING("control: GOAWAY redirect to %s ignored (only the manager may redirect)",
                    end.redirect.c_str());
      }
      session_end.reason = SessionEnd::Reason::kGoaway;
      session_end.retry_after_ms = end.retry_after_ms;
      break;
    case LinkEndReason::kPeerClosed:
    case LinkEndReason::kTransport:
      // A close before WELCOME is the gateway shedding load ("busy, back off").
      if (!end.established) {
        session_end.reason = SessionEnd::Reason::kBusy;
      }
      break;
    case LinkEndReason::kNotReading:
      session_end.detail = "gateway is not reading control frames";
      break;
    default:
      break;
  }
  End(std::move(session_end));
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
  dialer_.reset();
  io_.Close();
}

}  // namespace camtunnel::agent
