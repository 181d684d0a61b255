#include "gateway/frontend_connection.h"

#include <cerrno>
#include <optional>
#include <string>

#include "gateway/gateway_shard.h"
#include "gateway/relocations.h"
#include "gateway/request_filter.h"
#include "gateway/tunnel_opener.h"
#include "gateway/tunnel_relay.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "runtime/clock.h"
#include "runtime/log.h"

namespace camtunnel::gateway {
namespace {

RequestKind KindOf(FrontendForm form) {
  switch (form) {
    case FrontendForm::kRtspHost:
    case FrontendForm::kRtspPath:
      return RequestKind::kRtsp;
    case FrontendForm::kConnect:
      return RequestKind::kConnect;
    default:
      return RequestKind::kHttp;
  }
}

}  // namespace

void FrontendConnection::Start(GatewayShard& gw, int fd, bool source_allowed) {
  auto* f = new FrontendConnection(gw);
  f->source_allowed_ = source_allowed;
  gw.FrontendWaiting(1);
  f->stream_ = runtime::Stream::Create(gw.shard(), fd, nullptr, f);
  gw.ConnectionOpened();
  gw.shard().timers().Arm(f->timer_, gw.shard().now_ms(), gw.config().head_timeout_ms);
  f->stream_->Start();
}

FrontendConnection::FrontendConnection(GatewayShard& gw) : gw_(gw) {
  timer_.set_callback([this] {
    if (state_ == State::kHead) {
      // A head that does not arrive in time (slowloris) gets no answer, only a close.
      gw_.metrics().CountBadInput(FrontendBadInput::kTimeout);
      stream_->Close(ETIMEDOUT);
    } else if (state_ == State::kOpening) {
      gw_.registry().TakePending(tunnel_id_);
      FailOpen(504, OpenResult::kTimeout, "the camera did not answer in time");
    } else if (state_ == State::kWaitingAgent) {
      gw_.agent_waiters().Remove(route_.agent_id, this);
      gw_.metrics().takeover_held_timeout.Add();
      FailOpen(503, OpenResult::kOffline, "agent offline (did not connect while held)");
    }
  });
}

void FrontendConnection::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (state_ != State::kHead) {
    // Pipelined bytes while the tunnel opens are kept for the relay: every byte, since a hole
    // would corrupt the stream. Past the bound reading pauses; what was already in flight still
    // arrives, which bounds the overshoot to one completion batch.
    head_.Append(bytes);
    if (head_.size() > proto::kMaxHeadBytes * 2) {
      stream_->PauseRead();
    }
    return;
  }
  head_.Append(bytes);
  proto::RequestHead head;
  const proto::HeadResult r = head_.Parse(&head);
  if (r == proto::HeadResult::kNeedMore) {
    return;
  }
  protocol_ = SniffProtocol(head_.buffer());
  kind_ = protocol_ == FrontendProtocol::kRtsp ? RequestKind::kRtsp : RequestKind::kHttp;
  if (r != proto::HeadResult::kComplete) {
    const FrontendError e = FrontendErrorFromHeadResult(r);
    gw_.metrics().CountBadInput(e == FrontendError::kMalformedHead ? FrontendBadInput::kMalformed
                                                                   : FrontendBadInput::kTooLarge);
    AnswerError(e);
    return;
  }
  OnHead(head);
}

bool FrontendConnection::Admitted(const proto::RequestHead& head) {
  if (!source_allowed_) {
    gw_.metrics().CountRefusal(FrontendRefusal::kSource);
    state_ = State::kDone;
    gw_.shard().timers().Cancel(timer_);
    Answer(403, "source address not allowed (frontend_allow)");
    return false;
  }
  const std::string& token = gw_.config().frontend_token;
  // RTSP clients (and their RTSP-over-HTTP transport) cannot send a token: the allowlist alone
  // guards them. Proxy-Authorization, not Authorization: the latter belongs to the camera.
  if (token.empty() || head.protocol == proto::Protocol::kRtsp10 || IsRtspOverHttp(head)) {
    return true;
  }
  constexpr std::string_view kBearer = "Bearer ";
  auto auth = head.headers.Find("Proxy-Authorization");
  if (auth && auth->size() > kBearer.size() &&
      proto::EqualsIgnoreCase(auth->substr(0, kBearer.size()), kBearer) &&
      proto::ConstantTimeEqual(proto::AsBytes(auth->substr(kBearer.size())),
                               proto::AsBytes(token))) {
    return true;
  }
  gw_.metrics().CountRefusal(FrontendRefusal::kToken);
  state_ = State::kDone;
  gw_.shard().timers().Cancel(timer_);
  gw_.metrics().CountFrontend(kind_, 407);
  stream_->Write(BuildProxyAuthRequired());
  stream_->Finish();
  return false;
}

void FrontendConnection::OnHead(const proto::RequestHead& head) {
  if (auto cseq = head.headers.Find("CSeq")) {
    cseq_ = std::string(*cseq);
  }
  if (head.method == "CONNECT") {
    kind_ = RequestKind::kConnect;  // refusals of CONNECT are counted as CONNECT
  }
  if (!Admitted(head)) {
    return;
  }
  const RouteDecision d = RouteFirstRequest(head, gw_.route_config());
  if (d.error != FrontendError::kOk) {
    gw_.metrics().CountBadInput(FrontendBadInput::kMalformed);
    AnswerError(d.error);
    return;
  }
  route_ = d.route;
  protocol_ = ProtocolOfForm(route_.form);
  kind_ = KindOf(route_.form);
  if (const unsigned home = gw_.HomeShard(route_.agent_id); home != gw_.index()) {
    MoveTo(home);
    return;
  }
  Open(head);
}

void FrontendConnection::Open(const proto::RequestHead& head) {
  const OpenAttempt a = StartTunnel(gw_, route_.agent_id, route_.service, route_.port, this);
  if (a.result == OpenResult::kOffline || a.result == OpenResult::kUnknownAgent) {
    // Not online here, but the manager may have told us where it went (gateway/relocations.h):
    // send the client there rather than 503/404. A session here since then makes it stale.
    const AgentStats* stats = gw_.registry().Stats(route_.agent_id);
    std::optional<std::string> to = gw_.relocations().Find(
        route_.agent_id, stats != nullptr ? stats->sessions : 0, gw_.shard().now_ms());
    if (to && Redirect(head, *to)) {
      return;
    }
    if (gw_.HoldsRequestsForAgents() && !held_) {
      // Taking over from a draining process: the agent is on its way here.
      held_ = true;
      state_ = State::kWaitingAgent;
      gw_.agent_waiters().Add(route_.agent_id, this);
      gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), gw_.config().takeover_hold_ms);
      return;
    }
    if (gw_.draining() && Redirect(head, route_.client_authority)) {
      return;  // to this same address, which the process taking over now answers
    }
  }
  if (a.result != OpenResult::kOk) {
    FailOpen(a.status, a.result, a.reason);
    return;
  }
  camera_authority_ = a.camera_authority;
  tunnel_id_ = a.tunnel_id;
  state_ = State::kOpening;
  open_started_ns_ = runtime::MonotonicNs();
  gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), gw_.config().open_timeout_ms);
}

bool FrontendConnection::Redirect(const proto::RequestHead& head, std::string_view authority) {
  if (authority.empty()) {
    return false;  // host forms name no authority of ours to come back to
  }
  std::optional<std::string> location = RelocatedUrl(route_, head, authority);
  std::optional<std::string> answer =
      location ? BuildRedirectResponse(protocol_, *location, cseq_) : std::nullopt;
  if (!answer) {
    return false;
  }
  state_ = State::kDone;
  gw_.shard().timers().Cancel(timer_);
  gw_.metrics().CountFrontend(kind_, protocol_ == FrontendProtocol::kRtsp ? 302 : 307);
  stream_->Write(*answer);
  stream_->Finish();
  return true;
}

void FrontendConnection::OnAgentArrived() {
  gw_.shard().timers().Cancel(timer_);
  gw_.metrics().takeover_held_arrived.Add();
  proto::RequestHead head;
  head_.Parse(&head);  // the routed first head, still at the buffer's start
  Open(head);
}

void FrontendConnection::MoveTo(unsigned shard) {
  state_ = State::kMoving;
  gw_.shard().timers().Cancel(timer_);
  if (!stream_->Detach([this, shard](runtime::Stream* s) { OnDetached(s, shard); })) {
    FailOpen(503, OpenResult::kBusy, "cannot hand the request over");
  }
}

void FrontendConnection::OnDetached(runtime::Stream* stream, unsigned shard) {
  auto adopt = [stream, bytes = head_.Take()](GatewayShard& to) mutable {
    Adopt(to, stream, bytes);
  };
  if (!gw_.HandOver(shard, stream, this, std::move(adopt))) {
    FailOpen(503, OpenResult::kBusy, "gateway busy");
    return;
  }
  gw_.FrontendWaiting(-1);
  gw_.ConnectionClosed();
  delete this;
}

void FrontendConnection::Adopt(GatewayShard& gw, runtime::Stream* stream,
                               const std::string& bytes) {
  auto* f = new FrontendConnection(gw);
  f->stream_ = stream;
  gw.FrontendWaiting(1);
  gw.ConnectionOpened();
  stream->Attach(gw.shard(), f);
  gw.shard().timers().Arm(f->timer_, gw.shard().now_ms(), gw.config().head_timeout_ms);
  // Admitted on the shard that accepted it (source and token are checked again, same answer).
  f->OnStreamData(*stream, Bytes(bytes));
}

std::string FrontendConnection::FirstBytes(std::string_view camera_authority) {
  // The relay's own filter, run ahead on the same bytes: what it forwards first is this, byte
  // for byte, so the relay skips exactly these once the tunnel runs (TunnelRelay::Start).
  RequestFilter filter(route_, gw_.route_config(), camera_authority);
  std::string out;
  if (filter.Feed(Bytes(head_.buffer()), &out) != FrontendError::kOk) {
    return {};  // the relay answers the refusal; nothing goes ahead
  }
  return out;
}

void FrontendConnection::OnDataConnection(runtime::Stream* data,
                                          std::span<const uint8_t> camera_bytes,
                                          size_t sent_ahead) {
  gw_.shard().timers().Cancel(timer_);
  state_ = State::kDone;
  gw_.metrics().CountOpen(OpenResult::kOk);
  gw_.metrics().CountFrontend(kind_, 101);
  gw_.metrics().tunnel_open_seconds.Observe(
      static_cast<double>(runtime::MonotonicNs() - open_started_ns_) / 1e9);
  runtime::Stream* client = stream_;
  stream_ = nullptr;
  gw_.FrontendWaiting(-1);  // a tunnel now: the relay counts for the drain
  client->ResumeRead();
  TunnelRelay::Start(gw_, client, data, route_, camera_authority_, route_.agent_id, head_.buffer(),
                     camera_bytes, sent_ahead);
  delete this;
}

void FrontendConnection::OnOpenFailed(int error, std::string_view text) {
  gw_.shard().timers().Cancel(timer_);
  runtime::LogEvent(runtime::LogLevel::kInfo, "open_failed",
                    {runtime::Kv("agent", route_.agent_id), runtime::Kv("service", route_.service),
                     runtime::Kv("errno", error), runtime::Kv("text", text)});
  if (error == ETIMEDOUT || error == EHOSTUNREACH || error == ENETUNREACH) {
    FailOpen(504, OpenResult::kCameraRefused, "the camera did not answer");
  } else if (error == EPERM || error == EACCES) {
    FailOpen(403, OpenResult::kNotExposed, "the agent refused this service");
  } else {
    FailOpen(502, OpenResult::kCameraRefused, "the camera refused the connection");
  }
}

void FrontendConnection::OnAgentGone() {
  gw_.shard().timers().Cancel(timer_);
  if (gw_.draining()) {
    // GOAWAY'd by the drain before its data connection came: the process taking over (if any)
    // answers this address next.
    proto::RequestHead head;
    head_.Parse(&head);
    if (Redirect(head, route_.client_authority)) {
      gw_.metrics().CountOpen(OpenResult::kOffline);
      return;
    }
  }
  FailOpen(503, OpenResult::kOffline, "agent went offline");
}

void FrontendConnection::FailOpen(int status, OpenResult result, std::string_view detail) {
  gw_.metrics().CountOpen(result);
  state_ = State::kDone;
  Answer(status, detail);
}

void FrontendConnection::AnswerError(FrontendError error) {
  state_ = State::kDone;
  gw_.shard().timers().Cancel(timer_);
  gw_.metrics().CountFrontend(kind_, FrontendErrorStatus(error));
  stream_->Write(BuildErrorResponse(protocol_, error, cseq_));
  stream_->Finish();
}

void FrontendConnection::Answer(int status, std::string_view detail) {
  gw_.metrics().CountFrontend(kind_, status);
  stream_->Write(BuildErrorResponse(protocol_, status, detail, cseq_));
  stream_->Finish();
}

void FrontendConnection::OnStreamEof(runtime::Stream& stream) {
  if (state_ == State::kOpening || state_ == State::kMoving || state_ == State::kWaitingAgent) {
    // A client may half-close after its request (CONNECT users do); the tunnel still opens.
    return;
  }
  stream.Close(0);
}

void FrontendConnection::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  gw_.shard().timers().Cancel(timer_);
  if (state_ == State::kWaitingAgent) {
    gw_.agent_waiters().Remove(route_.agent_id, this);
  }
  if (state_ == State::kOpening) {
    // The client left before the camera answered: nobody may pick this tunnel up any more.
    gw_.registry().TakePending(tunnel_id_);
    gw_.metrics().CountOpen(OpenResult::kTimeout);
  }
  gw_.FrontendWaiting(-1);
  gw_.ConnectionClosed();
  delete this;
}

}  // namespace camtunnel::gateway
