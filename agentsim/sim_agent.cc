#include "agentsim/sim_agent.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "agentsim/data_tunnel.h"
#include "agentsim/dial.h"
#include "agentsim/upgrade_answer.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"
#include "runtime/clock.h"

namespace camtunnel::agentsim {
namespace {

// Every simulated agent's link runs with this profile.
const proto::LinkProfile kLinkProfile{
    .role = proto::LinkRole::kAgent,
    .kind = proto::LinkKind::kGateway,
    .capabilities = proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno | proto::kCapSpareData |
                    proto::kCapSpareEarlyData,
    .version = SimAgent::kVersion};
// What the simulated camera exposes. Only the names matter to the gateway's OPEN; host:port is
// what it writes into path-form URLs, and no socket is ever opened there (the camera is
// in-process).
const std::string kServices[] = {"rtsp=127.0.0.1:554", "http=127.0.0.1:80"};

// Which failure an ERROR this end sent is counted as.
std::string_view FailureFor(proto::ErrorCode sent) {
  switch (sent) {
    case proto::ErrorCode::kFrameTooLarge:
      return "frame_too_large";
    case proto::ErrorCode::kBadMac:
      return "bad_mac";
    case proto::ErrorCode::kUnexpectedFrame:
      return "unexpected_frame";
    default:
      return "malformed_frame";
  }
}
constexpr uint64_t kBackoffBaseMs = 100;

std::string ConnectFailure(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connect_refused";
    case ETIMEDOUT:
      return "connect_timeout";
    case EADDRNOTAVAIL:
    case EADDRINUSE:
      return "connect_no_port";
    case EMFILE:
    case ENFILE:
      return "connect_no_fd";
    default:
      return "connect_error";
  }
}

}  // namespace

SimAgent::SimAgent(SimContext& ctx, AgentObserver& observer, AgentIdentity identity)
    : ctx_(ctx), observer_(observer), identity_(std::move(identity)), link_(kLinkProfile, *this) {
  timer_.set_callback([this] { OnTimer(); });
  reconnect_timer_.set_callback([this] {
    if (!stopped_ && !ctx_.stopping) {
      observer_.OnReconnectDue(*this);
    }
  });
}

void SimAgent::SetGateway(const UrlEndpoint& gateway, const proto::KeyRef& key_ref,
                          const proto::Digest& key) {
  identity_.gateway = &gateway;
  identity_.key_ref = key_ref;
  identity_.key = key;
}

proto::Transport SimAgent::transport() const {
  return ctx_.GatewayTls(identity_) != nullptr ? proto::Transport::kTls : proto::Transport::kPlain;
}

void SimAgent::Connect() {
  if (state_ != State::kIdle || stopped_ || ctx_.stopping) {
    return;
  }
  state_ = State::kConnecting;
  attempt_open_ = true;
  const uint64_t now = ctx_.shard.now_ms();
  if (trying_since_ms_ == 0) {
    trying_since_ms_ = now;
  }
  ++ctx_.stats.agents.connect_attempts;
  ctx_.shard.timers().Arm(timer_, now, kHandshakeTimeoutMs);
  Dial(
      ctx_.shard, ctx_.GatewayAddress(identity_), ctx_.Source(identity_.index),
      ctx_.GatewayTls(identity_), ctx_.GatewayServerName(identity_), kHandshakeTimeoutMs, this,
      [this](runtime::Stream* s, int error) { OnDialed(s, error); },
      ctx_.tls_sessions ? ctx_.tls_sessions->Find(identity_.index) : nullptr);
}

void SimAgent::OnDialed(runtime::Stream* stream, int error) {
  if (stream == nullptr) {
    if (state_ == State::kConnecting) {
      ++ctx_.stats.agents.failures[ConnectFailure(error)];
    }
    Ended(error);
    return;
  }
  stream_ = stream;
  if (state_ != State::kConnecting || stopped_ || ctx_.stopping) {
    // The handshake deadline passed (or the run ended) while the connect was in flight.
    state_ = State::kClosing;
    stream->Close(ETIMEDOUT);
    return;
  }
  state_ = State::kUpgrading;
}

void SimAgent::OnStreamReady(runtime::Stream& stream) {
  if (state_ != State::kUpgrading) {
    return;
  }
  proto::RandomBytes(agent_nonce_);
  head_.clear();
  stream.Write(proto::BuildControlRequest(ctx_.GatewayHost(identity_), identity_.id,
                                          identity_.key_ref, agent_nonce_));
}

void SimAgent::OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  if (state_ == State::kUpgrading) {
    if (head_.empty()) {
      KeepTlsSession(ctx_, identity_.index, stream);
    }
    OnUpgradeBytes(bytes);
  } else if (state_ == State::kAwaitWelcome || state_ == State::kUp) {
    link_.Receive(bytes, runtime::MonotonicUs());
  }
}

void SimAgent::OnUpgradeBytes(std::span<const uint8_t> bytes) {
  const UpgradeAnswer answer = ReadUpgradeAnswer(head_, bytes, *stream_);
  if (answer.kind == UpgradeAnswer::Kind::kNeedMore) {
    return;
  }
  if (answer.kind == UpgradeAnswer::Kind::kFailed) {
    Fail(answer.reason, answer.error);
    return;
  }
  state_ = State::kAwaitWelcome;
  link_.BeginAgent({.agent_id = identity_.id, .key = &identity_.key, .key_ref = &identity_.key_ref},
                   agent_nonce_, answer.accept.gateway_nonce, answer.accept.gateway_proof,
                   transport(), answer.exporter_view(), kServices, runtime::MonotonicUs());
  if (!answer.rest.empty() && state_ == State::kAwaitWelcome) {
    link_.Receive({reinterpret_cast<const uint8_t*>(answer.rest.data()), answer.rest.size()},
                  runtime::MonotonicUs());
  }
}

void SimAgent::WriteLinkOutput(std::span<const uint8_t> bytes) {
  if (stream_ != nullptr && stream_->open()) {
    stream_->Write(bytes);
  }
}

size_t SimAgent::QueuedLinkOutput() const {
  return stream_ != nullptr ? stream_->queued_bytes() : 0;
}

void SimAgent::OnLinkFrame(const proto::Frame& frame) {
  if (frame.type() == static_cast<uint8_t>(proto::FrameType::kOpen)) {
    OnOpen(frame);
  } else {
    OnSpare(frame);  // the only other frame a gateway link takes at the agent
  }
}

void SimAgent::OnLinkHeartbeat(Heartbeat what) {
  AgentStats& s = ctx_.stats.agents;
  switch (what) {
    case Heartbeat::kPingSent:
      ++s.pings_sent;
      break;
    case Heartbeat::kPingAnswered:
      ++s.pings_answered;
      break;
    case Heartbeat::kPongReceived:
      ++s.pongs_received;
      break;
  }
}

void SimAgent::OnLinkEnded(const proto::LinkEnd& end) {
  if (state_ != State::kAwaitWelcome && state_ != State::kUp) {
    return;  // this end had already let the connection go
  }
  std::string reason;
  int error = EPROTO;
  switch (end.reason) {
    case proto::LinkEndReason::kBadProof:
      // A gateway that cannot prove it holds our key gets nothing more from us.
      reason = "bad_gateway_proof";
      break;
    case proto::LinkEndReason::kPeerError:
      reason = "error_" + std::to_string(end.peer_code);
      error = 0;
      break;
    case proto::LinkEndReason::kGoaway:
      ++ctx_.stats.agents.goaways;
      next_delay_ms_ = end.retry_after_ms;
      if (end.established) {
        state_ = State::kClosing;  // honoured, not a failure
        stream_->Close(0);
        return;
      }
      reason = "goaway";
      error = 0;
      break;
    case proto::LinkEndReason::kTimeout:
      ++ctx_.stats.agents.heartbeat_timeouts;
      reason = "heartbeat_timeout";
      error = ETIMEDOUT;
      break;
    case proto::LinkEndReason::kProtocol:
      reason = pending_failure_ != nullptr ? std::exchange(pending_failure_, nullptr)
                                           : std::string(FailureFor(*end.sent));
      break;
    case proto::LinkEndReason::kNotReading:
      reason = "not_reading";
      break;
    default:
      reason = "link_" + std::string(proto::LinkEndReasonName(end.reason));
      break;
  }
  ++ctx_.stats.agents.failures[reason];
  state_ = State::kClosing;
  if (end.sent) {
    stream_->CloseAfterFlush(error);  // our ERROR first
  } else {
    stream_->Close(error);
  }
}

void SimAgent::OnLinkEstablished(const proto::LinkWelcome& welcome) {
  reconnect_window_ms_ = welcome.reconnect_window_ms;
  state_ = State::kUp;
  const uint64_t now = ctx_.shard.now_ms();
  AgentStats& s = ctx_.stats.agents;
  ++s.sessions;
  if (had_session_) {
    ++s.reconnects;
  }
  had_session_ = true;
  s.connect_us.Record((now - trying_since_ms_) * 1000);
  trying_since_ms_ = 0;
  failures_ = 0;
  SendStatus();
  ArmTimer();
  attempt_open_ = false;
  observer_.OnAttemptEnded(*this);
  observer_.OnAgentUp(*this);
  if (session_listener_) {
    session_listener_(true);
  }
}

void SimAgent::OnOpen(const proto::Frame& frame) {
  ++ctx_.stats.agents.opens_received;
  const std::optional<proto::TunnelFields> open = proto::ReadOpen(frame);
  if (!open) {
    pending_failure_ = "malformed_open";
    link_.Fail(proto::ErrorCode::kMalformedFrame, "OPEN needs tunnel_id, service_name and nonce",
               runtime::MonotonicUs());
    return;
  }
  if (open->service != "rtsp" && open->service != "http") {
    ++ctx_.stats.agents.opens_refused;
    proto::FrameBuilder failed(proto::FrameType::kOpenFailed);
    failed.AddText(proto::Tag::kTunnelId, open->tunnel_text)
        .AddU32(proto::Tag::kErrno, EPERM)
        .AddText(proto::Tag::kText, "service not exposed");
    link_.Send(failed, runtime::MonotonicUs());
    return;
  }
  DataTunnel::Start(ctx_, identity_, open->tunnel, open->service, open->nonce);
}

void SimAgent::OnSpare(const proto::Frame& frame) {
  const std::optional<proto::TunnelFields> spare = proto::ReadSpare(frame);
  if (!spare) {
    pending_failure_ = "malformed_spare";
    link_.Fail(proto::ErrorCode::kMalformedFrame, "SPARE needs tunnel_id and nonce",
               runtime::MonotonicUs());
    return;
  }
  ++ctx_.stats.agents.spares["asked"];
  DataTunnel::Start(ctx_, identity_, spare->tunnel, "", spare->nonce);
}

void SimAgent::SendStatus() {
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, std::string("simulated camera ok; version ") +
                                        std::string(kVersion) + "; sessions " +
                                        std::to_string(ctx_.stats.agents.sessions));
  link_.Send(status, runtime::MonotonicUs());
  last_status_ms_ = ctx_.shard.now_ms();
  ++ctx_.stats.agents.status_sent;
}

// The handshake deadline until WELCOME; then the link's heartbeats (the rule is
// proto/control_link.h's) and a STATUS every kStatusIntervalMs.
void SimAgent::OnTimer() {
  if (state_ != State::kUp) {
    Fail("timeout", ETIMEDOUT);
    return;
  }
  if (link_.Tick(runtime::MonotonicUs()) < 0) {
    return;
  }
  if (ctx_.shard.now_ms() - last_status_ms_ >= kStatusIntervalMs) {
    SendStatus();
  }
  ArmTimer();
}

void SimAgent::ArmTimer() {
  const int64_t due = link_.next_tick_us();
  if (state_ != State::kUp || due < 0) {
    return;
  }
  const uint64_t now = ctx_.shard.now_ms();
  const uint64_t status_due = last_status_ms_ + kStatusIntervalMs;
  ctx_.shard.timers().Arm(timer_, now,
                          std::min(runtime::MsUntil(due), status_due > now ? status_due - now : 0));
}

void SimAgent::Fail(std::string_view reason, int error) {
  if (state_ == State::kClosing || state_ == State::kIdle) {
    return;
  }
  ++ctx_.stats.agents.failures[std::string(reason)];
  state_ = State::kClosing;
  if (stream_ != nullptr) {
    stream_->Close(error);
  }
}

void SimAgent::OnStreamEof(runtime::Stream& stream) {
  if (state_ == State::kUp) {
    ++ctx_.stats.agents.failures["session_closed"];
  } else if (state_ != State::kClosing) {
    ++ctx_.stats.agents.failures["closed_in_handshake"];
  }
  state_ = State::kClosing;
  stream.Close(0);
}

void SimAgent::OnStreamClosed(runtime::Stream& /*stream*/, int error) { Ended(error); }

void SimAgent::Ended(int error) {
  const bool was_up = up_slot != SIZE_MAX;
  const bool handshaking =
      state_ == State::kUpgrading || state_ == State::kAwaitWelcome || state_ == State::kConnecting;
  if (handshaking && stream_ != nullptr) {
    // Closed under us before WELCOME without a recorded reason: TLS failure or reset.
    ++ctx_.stats.agents.failures[error == EPROTO ? "tls_error" : "closed_in_handshake"];
  }
  stream_ = nullptr;
  state_ = State::kIdle;
  head_.clear();
  ctx_.shard.timers().Cancel(timer_);
  if (was_up) {
    observer_.OnAgentDown(*this);
    if (session_listener_) {
      session_listener_(false);
    }
  }
  if (attempt_open_) {
    attempt_open_ = false;
    observer_.OnAttemptEnded(*this);
  }
  if (stopped_ || ctx_.stopping) {
    return;
  }
  uint64_t delay = 0;
  if (next_delay_ms_ >= 0) {
    delay = static_cast<uint64_t>(next_delay_ms_);
    next_delay_ms_ = -1;
  } else if (was_up) {
    // A lost session: spread the fleet over the window the gateway asked for.
    delay = ctx_.options.honour_reconnect_window ? ctx_.Random(reconnect_window_ms_) : 0;
  } else {
    // Full jitter (uniform in [0, cap)): synchronised retries are what melts a gateway.
    failures_ = std::min<uint32_t>(failures_ + 1, 20);
    const uint64_t cap = std::min<uint64_t>(ctx_.options.backoff_max_ms,
                                            kBackoffBaseMs << std::min<uint32_t>(failures_, 16));
    delay = ctx_.Random(cap) + 1;
  }
  ScheduleReconnect(delay);
}

void SimAgent::ScheduleReconnect(uint64_t delay_ms) {
  if (delay_ms == 0) {
    observer_.OnReconnectDue(*this);
    return;
  }
  ctx_.shard.timers().Arm(reconnect_timer_, ctx_.shard.now_ms(), delay_ms);
}

void SimAgent::Drop(std::optional<uint64_t> down_ms) {
  if (stream_ == nullptr || state_ == State::kClosing || state_ == State::kIdle) {
    return;
  }
  next_delay_ms_ = down_ms ? static_cast<int64_t>(*down_ms) : -1;
  state_ = State::kClosing;
  CutConnection();
}

void SimAgent::Stop() {
  stopped_ = true;
  ctx_.shard.timers().Cancel(reconnect_timer_);
  if (stream_ != nullptr && state_ != State::kClosing) {
    state_ = State::kClosing;
    CutConnection();
  }
}

void SimAgent::CutConnection() {
  // shutdown(2) ends the armed multishot receive with EOF, and the stream then closes with no
  // ring operation left to cancel. Stream::Close would submit an IORING_ASYNC_CANCEL_FD, which
  // the kernel serves by scanning every armed poll of the ring: closing 18,000 agents that way
  // costs 16 s of kernel CPU (quadratic). TODO: drop this once runtime::Stream cancels its
  // receive by user_data (O(1)); see bench/agentsim.md.
  if (!stream_->read_eof()) {
    ::shutdown(stream_->fd(), SHUT_RDWR);
  } else {
    stream_->Close(0);
  }
}

}  // namespace camtunnel::agentsim
