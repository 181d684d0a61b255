#include "agentsim/sim_manager_link.h"

#include <cerrno>

#include "agentsim/activation_exchange.h"
#include "agentsim/dial.h"
#include "agentsim/sim_agent.h"
#include "agentsim/upgrade_answer.h"
#include "proto/http_head.h"
#include "proto/manager_command.h"
#include "proto/upgrade.h"
#include "runtime/clock.h"

namespace camtunnel::agentsim {
namespace {

// Every simulated agent's manager link runs with this profile (as camtunnel-agent's does).
const proto::LinkProfile kManagerLinkProfile{
    .role = proto::LinkRole::kAgent,
    .kind = proto::LinkKind::kManager,
    .capabilities = proto::kCapPlainFrameMac | proto::kCapCommandAck,
    .version = SimAgent::kVersion};

std::string DialFailure(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connect_refused";
    case ETIMEDOUT:
      return "connect_timeout";
    default:
      return "connect_error";
  }
}

}  // namespace

SimManagerLink::SimManagerLink(SimContext& ctx, ManagerLinkDelegate& delegate)
    : ctx_(ctx), delegate_(delegate), link_(kManagerLinkProfile, *this) {
  timer_.set_callback([this] { OnTimer(); });
}

void SimManagerLink::Connect(const UrlEndpoint& manager, uint32_t agent_index,
                             const std::string& agent_id, const proto::AgentSecret& secret) {
  if (state_ != State::kIdle || ctx_.stopping) {
    return;
  }
  manager_ = &manager;
  agent_id_ = &agent_id;
  secret_ = &secret;
  seal_key_ = proto::KeySealKey(secret, agent_id);
  end_ = {};
  answered_ = false;
  state_ = State::kConnecting;
  ++ctx_.stats.managed.link_attempts;
  ctx_.shard.timers().Arm(timer_, ctx_.shard.now_ms(), kHandshakeTimeoutMs);
  Dial(ctx_.shard, manager.address, ctx_.Source(agent_index),
       manager.tls ? ctx_.manager_tls_ctx : nullptr, manager.server_name, kHandshakeTimeoutMs, this,
       [this](runtime::Stream* s, int error) { OnDialed(s, error); });
}

void SimManagerLink::OnDialed(runtime::Stream* stream, int error) {
  if (stream == nullptr) {
    if (end_.reason.empty()) {
      end_.reason = DialFailure(error);
    }
    Ended();
    return;
  }
  stream_ = stream;
  if (state_ != State::kConnecting || ctx_.stopping) {
    state_ = State::kClosing;  // the deadline passed or Close() came while the connect ran
    stream->Close(ETIMEDOUT);
    return;
  }
  state_ = State::kUpgrading;
}

void SimManagerLink::OnStreamReady(runtime::Stream& stream) {
  if (state_ != State::kUpgrading) {
    return;
  }
  proto::RandomBytes(agent_nonce_);
  head_.clear();
  stream.Write(proto::BuildManagerRequest(manager_->host, *agent_id_, agent_nonce_));
}

void SimManagerLink::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  answered_ = true;
  if (state_ == State::kUpgrading) {
    OnUpgradeBytes(bytes);
  } else if (state_ == State::kAwaitWelcome || state_ == State::kUp) {
    link_.Receive(bytes, runtime::MonotonicUs());
  }
}

void SimManagerLink::OnUpgradeBytes(std::span<const uint8_t> bytes) {
  const UpgradeAnswer answer = ReadUpgradeAnswer(head_, bytes, *stream_);
  if (answer.kind == UpgradeAnswer::Kind::kNeedMore) {
    return;
  }
  if (answer.kind == UpgradeAnswer::Kind::kFailed) {
    end_.upgrade_refused = answer.head.status == 401 || answer.head.status == 403;
    end_.refused = end_.upgrade_refused;
    if (answer.head.status == 503) {
      end_.retry_after_ms = RetryAfterMs(answer.head);
    }
    Fail(answer.reason, answer.error);
    return;
  }
  state_ = State::kAwaitWelcome;
  link_.BeginAgent({.agent_id = *agent_id_, .key = secret_}, agent_nonce_,
                   answer.accept.gateway_nonce, answer.accept.gateway_proof,
                   answer.tls ? proto::Transport::kTls : proto::Transport::kPlain,
                   answer.exporter_view(), {}, runtime::MonotonicUs());
  if (!answer.rest.empty() && state_ == State::kAwaitWelcome) {
    link_.Receive({reinterpret_cast<const uint8_t*>(answer.rest.data()), answer.rest.size()},
                  runtime::MonotonicUs());
  }
}

void SimManagerLink::WriteLinkOutput(std::span<const uint8_t> bytes) {
  if (stream_ != nullptr && stream_->open()) {
    stream_->Write(bytes);
  }
}

size_t SimManagerLink::QueuedLinkOutput() const {
  return stream_ != nullptr ? stream_->queued_bytes() : 0;
}

void SimManagerLink::OnLinkEstablished(const proto::LinkWelcome& welcome) {
  state_ = State::kUp;
  end_.established = true;
  ++ctx_.stats.managed.links_established;
  ++ctx_.stats.managed.links_up;
  ArmTimer();
  delegate_.OnManagerLinkUp(welcome);
}

void SimManagerLink::Ack(uint64_t command_id, std::string_view outcome) {
  proto::FrameBuilder ack = proto::BuildAck(command_id, outcome);
  link_.Send(ack, runtime::MonotonicUs());
  ++ctx_.stats.managed.acks_sent;
}

void SimManagerLink::OnLinkFrame(const proto::Frame& frame) {
  const auto type = static_cast<proto::FrameType>(frame.type());
  // A command delivered again is acknowledged, not redone (PROTOCOL.md 10.6).
  const uint64_t command_id = type == proto::FrameType::kAssign ? 0 : proto::CommandIdOf(frame);
  if (command_id != 0 && !delegate_.TakeCommand(command_id)) {
    ++ctx_.stats.managed.duplicate_commands;
    Ack(command_id, proto::kAckDuplicate);
    return;
  }
  switch (type) {
    case proto::FrameType::kAssign: {
      std::string error;
      auto list = proto::ParseAssign(seal_key_, *agent_id_, frame, &error);
      if (!list) {
        // The previous list stays in force: a bad ASSIGN never half-applies.
        end_.reason = "malformed_assign";
        link_.Fail(proto::ErrorCode::kMalformedFrame, error, runtime::MonotonicUs());
        return;
      }
      delegate_.OnAssign(std::move(*list));
      return;
    }
    case proto::FrameType::kSwitch: {
      auto url = frame.Text(proto::Tag::kRedirect);
      if (!url || !proto::IsValidStreamerUrl(*url)) {
        end_.reason = "malformed_switch";
        link_.Fail(proto::ErrorCode::kMalformedFrame, "SWITCH needs a redirect URL",
                   runtime::MonotonicUs());
        return;
      }
      delegate_.OnSwitch(*url);
      if (command_id != 0) {
        Ack(command_id, proto::kAckDone);
      }
      return;
    }
    default:  // DEACTIVATE or RESTART: acknowledged, the link ends, then the delegate acts
      if (command_id != 0) {
        Ack(command_id, proto::kAckDone);
      }
      end_.command = type == proto::FrameType::kDeactivate ? ManagerLinkEnd::Command::kDeactivate
                                                           : ManagerLinkEnd::Command::kRestart;
      link_.Close(std::string(proto::FrameTypeName(frame.type())));
      return;
  }
}

void SimManagerLink::OnLinkHeartbeat(Heartbeat what) {
  ManagedStats& s = ctx_.stats.managed;
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

void SimManagerLink::OnLinkEnded(const proto::LinkEnd& end) {
  if (state_ != State::kAwaitWelcome && state_ != State::kUp) {
    return;  // this end had already let the connection go
  }
  if (end_.reason.empty() && end_.command == ManagerLinkEnd::Command::kNone) {
    switch (end.reason) {
      case proto::LinkEndReason::kBadProof:
        end_.reason = "bad_manager_proof";
        break;
      case proto::LinkEndReason::kPeerError:
        end_.refused = end.peer_code == static_cast<uint16_t>(proto::ErrorCode::kBadProof);
        end_.reason = "error_" + std::to_string(end.peer_code);
        break;
      case proto::LinkEndReason::kGoaway:
        end_.reason = "goaway";
        end_.retry_after_ms = end.retry_after_ms;
        break;
      case proto::LinkEndReason::kTimeout:
        end_.reason = "heartbeat_timeout";
        end_.silent = true;
        break;
      case proto::LinkEndReason::kClosedHere:
        break;
      default:
        end_.reason = "link_" + std::string(proto::LinkEndReasonName(end.reason));
        break;
    }
  }
  state_ = State::kClosing;
  if (end.sent) {
    stream_->CloseAfterFlush(EPROTO);  // our ERROR first
  } else {
    stream_->Close(0);
  }
}

void SimManagerLink::SendStatus(std::string_view text) {
  if (state_ != State::kUp) {
    return;
  }
  proto::FrameBuilder status(proto::FrameType::kStatus);
  status.AddText(proto::Tag::kText, text.substr(0, proto::kMaxStatusText));
  link_.Send(status, runtime::MonotonicUs());
  ++ctx_.stats.managed.status_sent;
}

// The handshake deadline until WELCOME, then the link's heartbeats.
void SimManagerLink::OnTimer() {
  if (state_ != State::kUp) {
    Fail("timeout", ETIMEDOUT);
    return;
  }
  if (link_.Tick(runtime::MonotonicUs()) < 0) {
    return;
  }
  ArmTimer();
}

void SimManagerLink::ArmTimer() {
  const int64_t due = link_.next_tick_us();
  if (state_ != State::kUp || due < 0) {
    return;
  }
  ctx_.shard.timers().Arm(timer_, ctx_.shard.now_ms(), runtime::MsUntil(due));
}

void SimManagerLink::Fail(std::string reason, int error) {
  if (state_ == State::kClosing || state_ == State::kIdle) {
    return;
  }
  if (end_.reason.empty()) {
    end_.reason = std::move(reason);
  }
  state_ = State::kClosing;
  if (stream_ != nullptr) {
    stream_->Close(error);
  }
}

void SimManagerLink::Close() {
  if (state_ == State::kIdle || state_ == State::kClosing) {
    return;
  }
  state_ = State::kClosing;
  if (stream_ != nullptr) {
    stream_->Close(0);
  }
}

void SimManagerLink::OnStreamEof(runtime::Stream& stream) {
  if (end_.reason.empty() && end_.command == ManagerLinkEnd::Command::kNone &&
      state_ != State::kClosing) {
    // A close before any answer is the server's "busy, back off" (PROTOCOL.md section 4).
    end_.reason = !answered_ ? "busy" : state_ == State::kUp ? "closed" : "closed_in_handshake";
  }
  state_ = State::kClosing;
  stream.Close(0);
}

void SimManagerLink::OnStreamClosed(runtime::Stream& /*stream*/, int error) {
  if (end_.reason.empty() && end_.command == ManagerLinkEnd::Command::kNone &&
      state_ != State::kClosing) {
    end_.reason = !answered_ ? (error == EPROTO ? "tls_error_or_busy" : "busy") : "reset";
  }
  Ended();
}

void SimManagerLink::Ended() {
  if (end_.established) {
    --ctx_.stats.managed.links_up;
  }
  stream_ = nullptr;
  state_ = State::kIdle;
  head_.clear();
  ctx_.shard.timers().Cancel(timer_);
  if (!end_.reason.empty()) {
    ++ctx_.stats.managed.link_failures[end_.reason];
  }
  if (ctx_.stopping) {
    return;
  }
  // From the loop: the delegate may Connect() again, and we may be inside the connector.
  ctx_.shard.Defer([this, end = end_] { delegate_.OnManagerLinkEnded(end); });
}

}  // namespace camtunnel::agentsim
