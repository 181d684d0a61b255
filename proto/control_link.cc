// See control_link.h.
#include "proto/control_link.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <utility>

#include "proto/manager_link.h"
#include "proto/upgrade.h"

namespace camtunnel::proto {
namespace {

// The frames each end acts on beyond the ones the core handles (PING, PONG, ERROR,
// UNSUPPORTED, HELLO/WELCOME during the handshake, and GOAWAY at the agent): the direction
// column of PROTOCOL.md's frame table. Anything else is answered UNSUPPORTED.
bool Takes(LinkRole role, LinkKind kind, uint8_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kOpen:
    case FrameType::kSpare:
      return role == LinkRole::kAgent && kind == LinkKind::kGateway;
    case FrameType::kAssign:
    case FrameType::kSwitch:
    case FrameType::kDeactivate:
    case FrameType::kRestart:
      return role == LinkRole::kAgent && kind == LinkKind::kManager;
    case FrameType::kStatus:
      return role == LinkRole::kServer;
    case FrameType::kAck:
      return role == LinkRole::kServer && kind == LinkKind::kManager;
    case FrameType::kOpenFailed:
      return role == LinkRole::kServer && kind == LinkKind::kGateway;
    default:
      return false;
  }
}

uint64_t WallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

constexpr int64_t kUsPerMs = 1000;

}  // namespace

std::string_view LinkEndReasonName(LinkEndReason reason) {
  constexpr std::string_view kNames[] = {"closed_here", "peer_closed", "transport",
                                         "peer_error",  "goaway",      "protocol",
                                         "bad_proof",   "timeout",     "not_reading"};
  return kNames[static_cast<size_t>(reason)];
}

struct ControlLink::Handshake {
  Handshake(const LinkCredentials& credentials, const Nonce& agent_nonce_in,
            const Nonce& server_nonce_in, Transport transport_in,
            std::span<const uint8_t> exporter_in)
      : agent_id(credentials.agent_id),
        key(*credentials.key),
        has_key_ref(credentials.key_ref != nullptr),
        agent_nonce(agent_nonce_in),
        server_nonce(server_nonce_in),
        transport(transport_in) {
    if (has_key_ref) {
      key_ref = *credentials.key_ref;
    }
    std::copy_n(exporter_in.begin(), std::min(exporter_in.size(), exporter.size()),
                exporter.begin());
  }
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;

  std::string agent_id;
  Digest key{};
  KeyRef key_ref;
  bool has_key_ref = false;
  Nonce agent_nonce{};
  Nonce server_nonce{};
  Transport transport = Transport::kTls;
  std::array<uint8_t, kExporterBytes> exporter{};
  int64_t deadline_us = INT64_MAX;  // server: HELLO is due by then
  ~Handshake() { OPENSSL_cleanse(key.data(), key.size()); }

  std::span<const uint8_t> exporter_span() const {
    return std::span<const uint8_t>(exporter).first(transport == Transport::kTls ? kExporterBytes
                                                                                 : 0);
  }
  // The server's proof (in the 101) or the agent's (in HELLO).
  Digest Proof(LinkKind kind, bool server) const {
    if (kind == LinkKind::kManager) {
      const ManagerProofInput in{.agent_id = agent_id,
                                 .agent_nonce = agent_nonce,
                                 .manager_nonce = server_nonce,
                                 .transport = transport,
                                 .exporter = exporter_span()};
      return server ? ManagerProof(key, in) : ManagerAgentProof(key, in);
    }
    const HandshakeProofInput in{.agent_id = agent_id,
                                 .key_ref = has_key_ref ? &key_ref : nullptr,
                                 .agent_nonce = agent_nonce,
                                 .gateway_nonce = server_nonce,
                                 .transport = transport,
                                 .exporter = exporter_span()};
    return server ? GatewayProof(key, in) : AgentProof(key, in);
  }
  Digest PlainSessionKey(LinkKind kind) const {
    return kind == LinkKind::kManager ? ManagerSessionKey(key, agent_nonce, server_nonce)
                                      : SessionKey(key, agent_nonce, server_nonce);
  }
};

struct ControlLink::PlainMacs {
  FrameSealer sealer;
  FrameOpener opener;
};

ControlLink::ControlLink(const LinkProfile& profile, Handler& handler)
    : profile_(profile), handler_(handler) {}

ControlLink::~ControlLink() = default;

void ControlLink::Reset() {
  state_ = State::kIdle;
  peer_capabilities_ = 0;
  ping_sequence_ = 0;
  ping_sent_us_ = -1;
  last_rtt_us_ = 0;
  decoder_ = FrameDecoder();
  handshake_.reset();
  macs_.reset();
}

void ControlLink::SetUpMacs(const Digest& session_key) {
  // Section 7: the agent seals agent-to-gateway and opens gateway-to-agent; the server the
  // other way round. The manager link uses the same directions (section 10.2).
  const bool agent = profile_.role == LinkRole::kAgent;
  const Direction out = agent ? Direction::kAgentToGateway : Direction::kGatewayToAgent;
  const Direction in = agent ? Direction::kGatewayToAgent : Direction::kAgentToGateway;
  macs_ = std::make_unique<PlainMacs>(
      PlainMacs{.sealer = FrameSealer(session_key, out), .opener = FrameOpener(session_key, in)});
}

void ControlLink::AcceptUpgrade(const LinkCredentials& credentials, const Nonce& agent_nonce,
                                Transport transport, std::span<const uint8_t> exporter,
                                int64_t now_us, int64_t hello_deadline_us) {
  Reset();
  Nonce server_nonce{};
  RandomBytes(server_nonce);
  handshake_ =
      std::make_unique<Handshake>(credentials, agent_nonce, server_nonce, transport, exporter);
  const Handshake& h = *handshake_;
  if (transport == Transport::kPlain) {
    Digest session_key = h.PlainSessionKey(profile_.kind);
    SetUpMacs(session_key);
    OPENSSL_cleanse(session_key.data(), session_key.size());
  }
  state_ = State::kAwaitHello;
  heartbeat_ms_ = profile_.heartbeat_ms;
  last_rx_us_ = last_tx_us_ = now_us;
  handshake_->deadline_us = hello_deadline_us;
  const std::string accept =
      BuildControlAccept(h.server_nonce, h.Proof(profile_.kind, /*server=*/true));
  Emit(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(accept.data()), accept.size()));
}

void ControlLink::BeginAgent(const LinkCredentials& credentials, const Nonce& agent_nonce,
                             const Nonce& server_nonce, const Digest& server_proof,
                             Transport transport, std::span<const uint8_t> exporter,
                             std::span<const std::string> services, int64_t now_us) {
  Reset();
  const Handshake h(credentials, agent_nonce, server_nonce, transport, exporter);
  if (!ConstantTimeEqual(h.Proof(profile_.kind, /*server=*/true), server_proof)) {
    End({.reason = LinkEndReason::kBadProof,
         .detail = profile_.kind == LinkKind::kManager
                       ? "manager proof mismatch: this is not our manager, or it lost our secret"
                       : "gateway proof mismatch: the gateway does not hold this agent's key"});
    return;
  }
  if (transport == Transport::kPlain) {
    Digest session_key = h.PlainSessionKey(profile_.kind);
    SetUpMacs(session_key);
    OPENSSL_cleanse(session_key.data(), session_key.size());
  }
  state_ = State::kAwaitWelcome;
  heartbeat_ms_ = profile_.heartbeat_ms;
  last_rx_us_ = last_tx_us_ = now_us;
  FrameBuilder hello(FrameType::kHello);
  hello.Add(Tag::kProof, h.Proof(profile_.kind, /*server=*/false))
      .AddU32(Tag::kCapabilities, profile_.capabilities)
      .AddText(Tag::kVersion, profile_.version);
  for (const std::string& service : services) {
    hello.AddText(Tag::kService, service);
  }
  Send(hello, now_us);
}

void ControlLink::Emit(std::span<const uint8_t> bytes) {
  handler_.WriteLinkOutput(bytes);
  if (handler_.QueuedLinkOutput() > profile_.max_output) {
    // Control traffic is a few small frames; this much queued means the peer is not reading,
    // and no end may buffer for it without bound.
    End({.reason = LinkEndReason::kNotReading, .detail = "the peer is not reading"});
  }
}

void ControlLink::Send(FrameBuilder& frame, int64_t now_us) {
  if (state_ == State::kEnded || state_ == State::kIdle) {
    return;
  }
  last_tx_us_ = now_us;
  if (macs_) {
    Emit(macs_->sealer.Seal(frame));
  } else {
    Emit(frame.Finish());
  }
}

void ControlLink::Fail(ErrorCode code, std::string_view text, int64_t now_us) {
  if (state_ == State::kEnded) {
    return;
  }
  FrameBuilder error(FrameType::kError);
  error.AddU16(Tag::kErrorCode, static_cast<uint16_t>(code)).AddText(Tag::kText, text);
  Send(error, now_us);
  LinkEndReason reason = LinkEndReason::kProtocol;
  if (code == ErrorCode::kTimeout) {
    reason = LinkEndReason::kTimeout;
  } else if (code == ErrorCode::kBadProof) {
    reason = LinkEndReason::kBadProof;
  }
  End({.reason = reason, .sent = code, .detail = std::string(text)});
}

void ControlLink::GoAway(std::string_view reason, uint32_t reconnect_after_ms, int64_t now_us) {
  if (state_ == State::kEnded) {
    return;
  }
  FrameBuilder goaway(FrameType::kGoaway);
  goaway.AddU32(Tag::kReconnectAfterMs, reconnect_after_ms).AddText(Tag::kText, reason);
  Send(goaway, now_us);
  End({.reason = LinkEndReason::kClosedHere, .detail = "GOAWAY " + std::string(reason)});
}

void ControlLink::Close(std::string_view detail) {
  End({.reason = LinkEndReason::kClosedHere, .detail = std::string(detail)});
}

void ControlLink::PeerClosed(std::string_view detail) {
  End({.reason = LinkEndReason::kPeerClosed, .detail = std::string(detail)});
}

void ControlLink::Abort(std::string_view detail) {
  End({.reason = LinkEndReason::kTransport, .detail = std::string(detail)});
}

void ControlLink::End(LinkEnd end) {
  if (state_ == State::kEnded) {
    return;
  }
  end.established = state_ == State::kEstablished;
  state_ = State::kEnded;
  handshake_.reset();
  handler_.OnLinkEnded(end);
}

void ControlLink::Receive(std::span<const uint8_t> bytes, int64_t now_us) {
  while (!bytes.empty() && state_ != State::kEnded && state_ != State::kIdle) {
    Frame frame;
    const DecodeStatus st = decoder_.Decode(bytes, &frame);
    if (st == DecodeStatus::kNeedMore) {
      return;
    }
    if (st == DecodeStatus::kTooLarge) {
      Fail(ErrorCode::kFrameTooLarge, "frame too large", now_us);
      return;
    }
    Handle(frame, now_us);
  }
}

bool ControlLink::HelloProofValid(const Frame& frame) const {
  const std::optional<std::span<const uint8_t>> proof = frame.Bytes(Tag::kProof);
  return proof && ConstantTimeEqual(handshake_->Proof(profile_.kind, /*server=*/false), *proof);
}

void ControlLink::Handle(Frame& frame, int64_t now_us) {
  const uint8_t type = frame.type();
  if (macs_ && !macs_->opener.Open(frame)) {
    // Plain mode: someone on the path is injecting, replaying, reordering or reflecting frames
    // (or the peer is broken). Nothing in this frame is acted on, not even an ERROR's text.
    // Section 10.2's one exception: a manager answers a first HELLO whose proof is wrong too
    // with "bad proof", which tells the agent that this manager does not know its secret.
    if (profile_.kind == LinkKind::kManager && state_ == State::kAwaitHello &&
        type == static_cast<uint8_t>(FrameType::kHello) && !HelloProofValid(frame)) {
      Fail(ErrorCode::kBadProof, "bad proof", now_us);
    } else {
      Fail(ErrorCode::kBadMac, "bad MAC on " + std::string(FrameTypeName(type)), now_us);
    }
    return;
  }
  if (!frame.Valid()) {
    Fail(ErrorCode::kMalformedFrame, "malformed " + std::string(FrameTypeName(type)), now_us);
    return;
  }
  last_rx_us_ = now_us;
  const auto known = static_cast<FrameType>(type);
  if (known == FrameType::kError) {
    const uint16_t code = frame.U16(Tag::kErrorCode).value_or(0);
    std::string text(frame.Text(Tag::kText).value_or(""));
    std::string detail = "ERROR code=" + std::to_string(code) + " text=" + text;
    End({.reason = LinkEndReason::kPeerError,
         .peer_code = code,
         .peer_text = std::move(text),
         .detail = std::move(detail)});
    return;
  }
  if (state_ == State::kAwaitHello || state_ == State::kAwaitWelcome) {
    const FrameType first = state_ == State::kAwaitHello ? FrameType::kHello : FrameType::kWelcome;
    if (known != first) {
      Fail(ErrorCode::kUnexpectedFrame,
           "expected " + std::string(FrameTypeName(static_cast<uint8_t>(first))) + ", got " +
               std::string(FrameTypeName(type)),
           now_us);
      return;
    }
    if (state_ == State::kAwaitHello) {
      HandleHello(frame, now_us);
    } else {
      HandleWelcome(frame);
    }
    return;
  }
  switch (known) {
    case FrameType::kPing: {
      FrameBuilder pong(FrameType::kPong);
      pong.AddU64(Tag::kSequence, frame.U64(Tag::kSequence).value_or(0));
      handler_.OnLinkHeartbeat(Handler::Heartbeat::kPingAnswered);
      Send(pong, now_us);
      return;
    }
    case FrameType::kPong:
      handler_.OnLinkHeartbeat(Handler::Heartbeat::kPongReceived);
      if (ping_sent_us_ >= 0 && frame.U64(Tag::kSequence) == ping_sequence_) {
        last_rtt_us_ =
            static_cast<uint32_t>(std::clamp<int64_t>(now_us - ping_sent_us_, 0, UINT32_MAX));
        ping_sent_us_ = -1;
      }
      return;
    case FrameType::kUnsupported:
      return;  // never answered: two ends would answer each other forever
    case FrameType::kGoaway:
      if (profile_.role == LinkRole::kAgent) {
        const int64_t after = frame.U32(Tag::kReconnectAfterMs).value_or(0);
        std::string text(frame.Text(Tag::kText).value_or(""));
        std::string detail =
            "GOAWAY reason=" + text + " reconnect_after_ms=" + std::to_string(after);
        End({.reason = LinkEndReason::kGoaway,
             .peer_text = std::move(text),
             .retry_after_ms = after,
             .redirect = std::string(frame.Text(Tag::kRedirect).value_or("")),
             .detail = std::move(detail)});
        return;
      }
      break;
    default:
      break;
  }
  if (Takes(profile_.role, profile_.kind, type)) {
    handler_.OnLinkFrame(frame);
    return;
  }
  handler_.OnLinkUnsupported(type);
  FrameBuilder unsupported(FrameType::kUnsupported);
  unsupported.AddU8(Tag::kFrameType, type);
  Send(unsupported, now_us);
}

void ControlLink::HandleHello(const Frame& frame, int64_t now_us) {
  if (!HelloProofValid(frame)) {
    Fail(ErrorCode::kBadProof, "bad proof", now_us);
    return;
  }
  peer_capabilities_ = frame.U32(Tag::kCapabilities).value_or(0);
  handler_.OnLinkHello(frame);
  if (state_ == State::kEnded) {
    return;
  }
  handshake_.reset();
  state_ = State::kEstablished;
  SendWelcome(now_us);
  if (state_ == State::kEnded) {
    return;
  }
  handler_.OnLinkEstablished({.capabilities = profile_.capabilities,
                              .heartbeat_ms = heartbeat_ms_,
                              .reconnect_window_ms = profile_.reconnect_window_ms});
}

void ControlLink::SendWelcome(int64_t now_us) {
  FrameBuilder welcome(FrameType::kWelcome);
  welcome.AddU32(Tag::kCapabilities, profile_.capabilities)
      .AddU32(Tag::kHeartbeatMs, heartbeat_ms_)
      .AddU64(Tag::kServerTimeMs, WallClockMs())
      .AddU32(Tag::kReconnectWindowMs, profile_.reconnect_window_ms);
  for (size_t i = 0; i < profile_.managers.size() && i < kMaxManagers; ++i) {
    welcome.AddText(Tag::kManager, profile_.managers[i]);
  }
  Send(welcome, now_us);
}

void ControlLink::HandleWelcome(const Frame& frame) {
  const uint32_t announced = frame.U32(Tag::kHeartbeatMs).value_or(0);
  LinkWelcome welcome{.capabilities = frame.U32(Tag::kCapabilities).value_or(0),
                      .heartbeat_ms = std::clamp(announced != 0 ? announced : profile_.heartbeat_ms,
                                                 kMinHeartbeatMs, kMaxHeartbeatMs),
                      .server_time_ms = frame.U64(Tag::kServerTimeMs).value_or(0),
                      .reconnect_window_ms = std::min(
                          frame.U32(Tag::kReconnectWindowMs).value_or(0), kMaxReconnectWindowMs)};
  for (const Field& f : frame.fields()) {
    if (f.tag == static_cast<uint8_t>(Tag::kManager) && welcome.managers.size() < kMaxManagers) {
      welcome.managers.emplace_back(reinterpret_cast<const char*>(f.value.data()), f.value.size());
    }
  }
  peer_capabilities_ = welcome.capabilities;
  heartbeat_ms_ = welcome.heartbeat_ms;
  state_ = State::kEstablished;
  handler_.OnLinkEstablished(welcome);
}

int64_t ControlLink::next_tick_us() const {
  switch (state_) {
    case State::kIdle:
    case State::kEnded:
      return -1;
    case State::kAwaitHello:
    case State::kAwaitWelcome:
      // The agent's driver times its dial and WELCOME itself (no handshake state here).
      return handshake_ ? handshake_->deadline_us : INT64_MAX;
    case State::kEstablished:
      break;
  }
  const int64_t interval = static_cast<int64_t>(heartbeat_ms_) * kUsPerMs;
  return std::min(last_tx_us_ + interval, last_rx_us_ + interval * profile_.heartbeat_misses);
}

int64_t ControlLink::Tick(int64_t now_us) {
  if (state_ == State::kAwaitHello || state_ == State::kAwaitWelcome) {
    if (handshake_ && now_us >= handshake_->deadline_us) {
      Fail(ErrorCode::kTimeout,
           state_ == State::kAwaitHello ? "no verified HELLO in time" : "no WELCOME in time",
           now_us);
    }
    return next_tick_us();
  }
  if (state_ != State::kEstablished) {
    return -1;
  }
  const int64_t interval = static_cast<int64_t>(heartbeat_ms_) * kUsPerMs;
  const int64_t silent = now_us - last_rx_us_;
  if (silent >= interval * profile_.heartbeat_misses) {
    Fail(ErrorCode::kTimeout, "no frame for " + std::to_string(silent / kUsPerMs) + " ms", now_us);
    return -1;
  }
  if (now_us - last_tx_us_ >= interval) {
    FrameBuilder ping(FrameType::kPing);
    ping.AddU64(Tag::kSequence, ++ping_sequence_);
    ping_sent_us_ = now_us;
    handler_.OnLinkHeartbeat(Handler::Heartbeat::kPingSent);
    Send(ping, now_us);
  }
  return next_tick_us();
}

}  // namespace camtunnel::proto
