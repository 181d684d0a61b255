#include "agentsim/sim_agent.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "agentsim/data_tunnel.h"
#include "agentsim/dial.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"

namespace camtunnel::agentsim {
namespace {

constexpr uint32_t kCapabilities = proto::kCapPlainFrameMac | proto::kCapOpenFailedErrno |
                                   proto::kCapSpareData | proto::kCapSpareEarlyData;
// What the simulated camera exposes. Only the names matter to the gateway's OPEN; host:port is
// what it writes into path-form URLs, and no socket is ever opened there (the camera is
// in-process).
constexpr std::string_view kServices[] = {"rtsp=127.0.0.1:554", "http=127.0.0.1:80"};
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
    : ctx_(ctx), observer_(observer), identity_(std::move(identity)) {
  timer_.set_callback([this] { OnTimer(); });
  reconnect_timer_.set_callback([this] {
    if (!stopped_ && !ctx_.stopping) {
      observer_.OnReconnectDue(*this);
    }
  });
}

proto::Transport SimAgent::transport() const {
  return ctx_.tls_ctx != nullptr ? proto::Transport::kTls : proto::Transport::kPlain;
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
      ctx_.shard, ctx_.options.gateway_agent, ctx_.Source(identity_.index), ctx_.tls_ctx,
      ctx_.options.server_name, kHandshakeTimeoutMs, this,
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
  stream.Write(proto::BuildControlRequest(
      ctx_.options.server_name.empty() ? ctx_.options.gateway_agent_text : ctx_.options.server_name,
      identity_.id, identity_.key_ref, agent_nonce_));
}

void SimAgent::OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) {
  last_rx_ms_ = ctx_.shard.now_ms();
  if (state_ == State::kUpgrading) {
    if (head_.empty()) {
      KeepTlsSession(ctx_, identity_.index, stream);
    }
    OnUpgradeBytes(bytes);
  } else if (state_ == State::kAwaitWelcome || state_ == State::kUp) {
    OnFrames(bytes);
  }
}

void SimAgent::OnUpgradeBytes(std::span<const uint8_t> bytes) {
  head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::ResponseHead head;
  const proto::HeadResult r = proto::ParseResponseHead(head_, &head);
  if (r == proto::HeadResult::kNeedMore) {
    return;
  }
  if (r != proto::HeadResult::kComplete) {
    Fail("malformed_answer", EPROTO);
    return;
  }
  if (head.status != 101) {
    Fail("status_" + std::to_string(head.status), 0);
    return;
  }
  const auto accept = proto::ParseControlAccept(head);
  if (!accept) {
    Fail("malformed_answer", EPROTO);
    return;
  }
  gateway_nonce_ = accept->gateway_nonce;
  uint8_t exporter[proto::kExporterBytes];
  std::span<const uint8_t> exporter_view;
  if (stream_->tls()) {
    if (!stream_->ExportKeyingMaterial(proto::kExporterLabel, exporter)) {
      Fail("tls_exporter", EPROTO);
      return;
    }
    exporter_view = exporter;
  }
  const proto::HandshakeProofInput in{identity_.id,   &identity_.key_ref, agent_nonce_,
                                      gateway_nonce_, transport(),        exporter_view};
  if (!proto::ConstantTimeEqual(proto::GatewayProof(identity_.key, in), accept->gateway_proof)) {
    // A gateway that cannot prove it holds our key gets nothing more from us.
    Fail("bad_gateway_proof", EPROTO);
    return;
  }
  decoder_ = proto::FrameDecoder();
  if (transport() == proto::Transport::kPlain) {
    const proto::Digest session_key =
        proto::SessionKey(identity_.key, agent_nonce_, gateway_nonce_);
    sealer_.emplace(session_key, proto::Direction::kAgentToGateway);
    opener_.emplace(session_key, proto::Direction::kGatewayToAgent);
  } else {
    sealer_.reset();
    opener_.reset();
  }
  const std::string rest = head_.substr(head.head_bytes);
  head_.clear();
  head_.shrink_to_fit();  // idle agents keep no handshake buffer
  state_ = State::kAwaitWelcome;
  const proto::Digest proof = proto::AgentProof(identity_.key, in);
  proto::FrameBuilder hello(proto::FrameType::kHello);
  hello.Add(proto::Tag::kProof, proof)
      .AddU32(proto::Tag::kCapabilities, kCapabilities)
      .AddText(proto::Tag::kVersion, kVersion);
  for (std::string_view s : kServices) {
    hello.AddText(proto::Tag::kService, s);
  }
  Send(hello);
  if (!rest.empty()) {
    OnFrames({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
  }
}

void SimAgent::OnFrames(std::span<const uint8_t> bytes) {
  while (state_ == State::kAwaitWelcome || state_ == State::kUp) {
    proto::Frame frame;
    const proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
    if (st == proto::DecodeStatus::kNeedMore) {
      return;
    }
    if (st == proto::DecodeStatus::kTooLarge) {
      Fail("frame_too_large", EPROTO);
      return;
    }
    if (opener_ && !opener_->Open(frame)) {
      Fail("bad_mac", EPROTO);
      return;
    }
    if (!frame.Valid()) {
      Fail("malformed_frame", EPROTO);
      return;
    }
    OnFrame(frame);
  }
}

void SimAgent::OnFrame(const proto::Frame& frame) {
  const auto type = static_cast<proto::FrameType>(frame.type());
  if (state_ == State::kAwaitWelcome) {
    if (type == proto::FrameType::kWelcome) {
      OnWelcome(frame);
    } else if (type == proto::FrameType::kError) {
      Fail("error_" + std::to_string(frame.U16(proto::Tag::kErrorCode).value_or(0)), 0);
    } else if (type == proto::FrameType::kGoaway) {
      ++ctx_.stats.agents.goaways;
      next_delay_ms_ = frame.U32(proto::Tag::kReconnectAfterMs).value_or(0);
      Fail("goaway", 0);
    } else {
      Fail("unexpected_frame", EPROTO);
    }
    return;
  }
  switch (type) {
    case proto::FrameType::kPing: {
      proto::FrameBuilder pong(proto::FrameType::kPong);
      pong.AddU64(proto::Tag::kSequence, frame.U64(proto::Tag::kSequence).value_or(0));
      Send(pong);
      ++ctx_.stats.agents.pings_answered;
      return;
    }
    case proto::FrameType::kPong:
      ++ctx_.stats.agents.pongs_received;
      return;
    case proto::FrameType::kOpen:
      OnOpen(frame);
      return;
    case proto::FrameType::kSpare:
      OnSpare(frame);
      return;
    case proto::FrameType::kGoaway:
      ++ctx_.stats.agents.goaways;
      next_delay_ms_ = frame.U32(proto::Tag::kReconnectAfterMs).value_or(0);
      state_ = State::kClosing;
      stream_->Close(0);
      return;
    case proto::FrameType::kError:
      Fail("error_" + std::to_string(frame.U16(proto::Tag::kErrorCode).value_or(0)), 0);
      return;
    case proto::FrameType::kUnsupported:
      return;
    case proto::FrameType::kHello:
    case proto::FrameType::kWelcome:
    case proto::FrameType::kStatus:
    case proto::FrameType::kOpenFailed:
    case proto::FrameType::kOpened:
    case proto::FrameType::kAssign:
    case proto::FrameType::kSwitch:
    case proto::FrameType::kDeactivate:
    case proto::FrameType::kRestart:
      break;
  }
  // Unknown or misdirected types: answered, never fatal (forward compatibility).
  proto::FrameBuilder unsupported(proto::FrameType::kUnsupported);
  unsupported.AddU8(proto::Tag::kFrameType, frame.type());
  Send(unsupported);
}

void SimAgent::OnWelcome(const proto::Frame& frame) {
  // Clamped so a strange WELCOME cannot make 10,000 agents ping in a tight loop.
  heartbeat_ms_ =
      std::clamp<uint32_t>(frame.U32(proto::Tag::kHeartbeatMs).value_or(5000), 200, 600000);
  reconnect_window_ms_ = frame.U32(proto::Tag::kReconnectWindowMs).value_or(0);
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
  last_rx_ms_ = now;
  SendStatus();
  ctx_.shard.timers().Arm(timer_, now, heartbeat_ms_ / 2);
  attempt_open_ = false;
  observer_.OnAttemptEnded(*this);
  observer_.OnAgentUp(*this);
}

void SimAgent::OnOpen(const proto::Frame& frame) {
  ++ctx_.stats.agents.opens_received;
  const std::optional<proto::TunnelFields> open = proto::ReadOpen(frame);
  if (!open) {
    Fail("malformed_open", EPROTO);
    return;
  }
  if (open->service != "rtsp" && open->service != "http") {
    ++ctx_.stats.agents.opens_refused;
    proto::FrameBuilder failed(proto::FrameType::kOpenFailed);
    failed.AddText(proto::Tag::kTunnelId, open->tunnel_text)
        .AddU32(proto::Tag::kErrno, EPERM)
        .AddText(proto::Tag::kText, "service not exposed");
    Send(failed);
    return;
  }
  DataTunnel::Start(ctx_, identity_, open->tunnel, open->service, open->nonce);
}

void SimAgent::OnSpare(const proto::Frame& frame) {
  const std::optional<proto::TunnelFields> spare = proto::ReadSpare(frame);
  if (!spare) {
    Fail("malformed_spare", EPROTO);
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
  Send(status);
  last_status_ms_ = ctx_.shard.now_ms();
  ++ctx_.stats.agents.status_sent;
}

void SimAgent::Send(proto::FrameBuilder& frame) {
  if (stream_ == nullptr || !stream_->open()) {
    return;
  }
  if (sealer_) {
    stream_->Write(std::span<const uint8_t>(sealer_->Seal(frame)));
  } else {
    stream_->Write(std::span<const uint8_t>(frame.Finish()));
  }
  last_tx_ms_ = ctx_.shard.now_ms();
}

void SimAgent::OnTimer() {
  if (state_ != State::kUp) {
    Fail("timeout", ETIMEDOUT);
    return;
  }
  const uint64_t now = ctx_.shard.now_ms();
  // The gateway calls a session dead after 2 silent intervals; half an interval more here
  // leaves room for its own timer's granularity.
  if (now - last_rx_ms_ > 2ull * heartbeat_ms_ + heartbeat_ms_ / 2) {
    ++ctx_.stats.agents.heartbeat_timeouts;
    Fail("heartbeat_timeout", ETIMEDOUT);
    return;
  }
  if (now - last_tx_ms_ + heartbeat_ms_ / 4 >= heartbeat_ms_) {
    proto::FrameBuilder ping(proto::FrameType::kPing);
    ping.AddU64(proto::Tag::kSequence, ++ping_sequence_);
    Send(ping);
    ++ctx_.stats.agents.pings_sent;
  }
  if (now - last_status_ms_ >= kStatusIntervalMs) {
    SendStatus();
  }
  ctx_.shard.timers().Arm(timer_, now, heartbeat_ms_ / 2);
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
  sealer_.reset();
  opener_.reset();
  head_.clear();
  ctx_.shard.timers().Cancel(timer_);
  if (was_up) {
    observer_.OnAgentDown(*this);
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
