// See agent_link.h.
#include "manager/agent_link.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "manager/manager_server.h"
#include "proto/upgrade.h"

namespace camtunnel::manager {
namespace {

using proto::FrameBuilder;
using proto::FrameType;
using proto::Tag;

// Refresh keys when a quarter of their validity is left: a manager that is down for a while
// still leaves the agent with valid keys, and a refresh that fails has time to be retried.
uint64_t RefreshDelayMs(uint64_t expiry_unix_s, int64_t now_wall_ms) {
  const int64_t left_ms = static_cast<int64_t>(expiry_unix_s) * 1000 - now_wall_ms;
  return static_cast<uint64_t>(std::max<int64_t>(left_ms * 3 / 4, 1000));
}

// The URL of "streamer=<URL> state=connected" (what camtunnel-agent reports when its control
// connection to a Streamer is up), or empty for any other STATUS text.
std::string_view ConnectedStreamer(std::string_view status) {
  constexpr std::string_view kPrefix = "streamer=";
  constexpr std::string_view kConnected = " state=connected";
  if (!status.starts_with(kPrefix) || !status.ends_with(kConnected)) {
    return {};
  }
  std::string_view url =
      status.substr(kPrefix.size(), status.size() - kPrefix.size() - kConnected.size());
  return url.find(' ') == std::string_view::npos ? url : std::string_view();
}

}  // namespace

AgentLink::AgentLink(ManagerServer& server, runtime::Stream* stream, const AgentRecord& agent)
    : server_(server),
      stream_(stream),
      agent_id_(agent.agent_id),
      secret_(agent.secret),
      seal_key_(proto::KeySealKey(agent.secret, agent.agent_id)),
      located_url_(agent.located_url) {}

void AgentLink::Start(ManagerServer& server, runtime::Stream* stream,
                      const proto::ManagerUpgrade& upgrade, const AgentRecord& agent,
                      std::span<const uint8_t> leftover) {
  auto* link = new AgentLink(server, stream, agent);
  stream->set_handler(link);
  link->agent_nonce_ = upgrade.agent_nonce;
  proto::RandomBytes(link->manager_nonce_);
  uint8_t exporter[proto::kExporterBytes];
  const bool tls = stream->ExportKeyingMaterial(proto::kExporterLabel, exporter);
  const proto::ManagerProofInput in{
      .agent_id = link->agent_id_,
      .agent_nonce = link->agent_nonce_,
      .manager_nonce = link->manager_nonce_,
      .transport = tls ? proto::Transport::kTls : proto::Transport::kPlain,
      .exporter = tls ? std::span<const uint8_t>(exporter) : std::span<const uint8_t>()};
  const proto::Digest proof = proto::ManagerProof(link->secret_, in);
  if (!tls) {
    // Plain link (section 10.2): the MACs start with HELLO (sequence 0 each way).
    proto::Digest session_key =
        proto::ManagerSessionKey(link->secret_, link->agent_nonce_, link->manager_nonce_);
    link->sealer_.emplace(session_key, proto::Direction::kGatewayToAgent);
    link->opener_.emplace(session_key, proto::Direction::kAgentToGateway);
    OPENSSL_cleanse(session_key.data(), session_key.size());
  }
  stream->Write(proto::BuildControlAccept(link->manager_nonce_, proof));
  link->last_rx_ms_ = link->last_tx_ms_ = server.shard().now_ms();
  link->deadline_.set_callback([link] {
    link->Fail(proto::ErrorCode::kTimeout, "no verified HELLO in time",
               &link->server_.counters().link_timeouts);
  });
  server.shard().timers().Arm(link->deadline_, server.shard().now_ms(),
                              server.config().handshake_timeout_ms);
  if (!leftover.empty()) {
    link->OnStreamData(*stream, leftover);
  }
}

void AgentLink::Send(FrameBuilder& frame) {
  if (state_ == State::kClosed) {
    return;
  }
  stream_->Write(std::span<const uint8_t>(sealer_ ? sealer_->Seal(frame) : frame.Finish()));
  last_tx_ms_ = server_.shard().now_ms();
}

void AgentLink::CloseGracefully() {
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  server_.shard().timers().Cancel(deadline_);
  server_.shard().timers().Cancel(refresh_);
  stream_->Finish();
}

void AgentLink::Fail(proto::ErrorCode code, std::string_view text, uint64_t* count) {
  if (state_ == State::kClosed) {
    return;
  }
  ++*count;
  FrameBuilder error(FrameType::kError);
  error.AddU16(Tag::kErrorCode, static_cast<uint16_t>(code)).AddText(Tag::kText, text);
  Send(error);
  CloseGracefully();
}

void AgentLink::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  while (!bytes.empty() && state_ != State::kClosed) {
    proto::Frame frame;
    switch (decoder_.Decode(bytes, &frame)) {
      case proto::DecodeStatus::kNeedMore:
        return;
      case proto::DecodeStatus::kTooLarge:
        Fail(proto::ErrorCode::kFrameTooLarge, "frame too large",
             &server_.counters().link_oversized_frames);
        return;
      case proto::DecodeStatus::kFrame:
        if (!HandleFrame(frame)) {
          return;
        }
        break;
    }
  }
}

bool AgentLink::HandleFrame(proto::Frame& frame) {
  const std::string name(proto::FrameTypeName(frame.type()));
  if (opener_ && !opener_->Open(frame)) {
    // Plain link: a forged, replayed, reordered or reflected frame (or a broken peer). The one
    // exception is a first HELLO whose proof is wrong too: both come from S, and "bad proof"
    // tells an agent that the manager does not know its secret (it backs off at the cap).
    if (state_ == State::kAwaitHello && frame.type() == static_cast<uint8_t>(FrameType::kHello) &&
        !HelloProofValid(frame)) {
      Fail(proto::ErrorCode::kBadProof, "bad proof", &server_.counters().link_bad_proof);
    } else {
      std::fprintf(stderr, "camtunnel-manager: agent=%s remote=%s: bad MAC on %s, link closed\n",
                   agent_id_.c_str(), stream_->peer_text().c_str(), name.c_str());
      Fail(proto::ErrorCode::kBadMac, "bad MAC on " + name, &server_.counters().link_bad_macs);
    }
    return false;
  }
  if (!frame.Valid()) {
    Fail(proto::ErrorCode::kMalformedFrame, "malformed " + name,
         &server_.counters().link_malformed_frames);
    return false;
  }
  last_rx_ms_ = server_.shard().now_ms();
  const auto type = static_cast<FrameType>(frame.type());
  if (state_ == State::kAwaitHello) {
    if (type != FrameType::kHello) {
      Fail(proto::ErrorCode::kUnexpectedFrame, "expected HELLO, got " + name,
           &server_.counters().link_malformed_frames);
      return false;
    }
    HandleHello(frame);
    return state_ != State::kClosed;
  }
  switch (type) {
    case FrameType::kPing: {
      FrameBuilder pong(FrameType::kPong);
      pong.AddU64(Tag::kSequence, frame.U64(Tag::kSequence).value_or(0));
      Send(pong);
      break;
    }
    case FrameType::kStatus:
      OnStatus(frame.Text(Tag::kText).value_or(""));
      break;
    case FrameType::kError:
      // An agent that found a bad MAC on our frames (tampering on the way down) says so before
      // it closes: counted here, where the operator looks.
      if (frame.U16(Tag::kErrorCode) == static_cast<uint16_t>(proto::ErrorCode::kBadMac)) {
        ++server_.counters().link_agent_bad_macs;
        std::fprintf(stderr, "camtunnel-manager: agent=%s remote=%s reports a bad MAC: %s\n",
                     agent_id_.c_str(), stream_->peer_text().c_str(),
                     std::string(frame.Text(Tag::kText).value_or("")).c_str());
      }
      CloseGracefully();
      return false;
    case FrameType::kPong:
    case FrameType::kUnsupported:
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

void AgentLink::OnStatus(std::string_view text) {
  ++server_.counters().status_received;
  last_status_ = std::string(text);
  // TODO: batch status writes; one fsync per STATUS is fine for hundreds of agents, not for a
  // large fleet.
  server_.store().RecordStatus(agent_id_, last_status_, ManagerServer::WallMs()).IgnoreError();
  // Only a configured Streamer is taken: the text is the agent's word, and it ends up in
  // lookups and in relocation pushes to gateways.
  const std::string_view at = ConnectedStreamer(last_status_);
  if (at.empty() || at == located_url_ || !server_.pool().Find(at)) {
    return;
  }
  std::string from = std::exchange(located_url_, std::string(at));
  server_.store().RecordLocation(agent_id_, located_url_).IgnoreError();
  server_.AgentLocated(agent_id_, from, located_url_);
}

bool AgentLink::HeldBy(std::string_view url) const {
  if (!located_url_.empty()) {
    return located_url_ == url;
  }
  return !assigned_.empty() && assigned_.front().url == url;
}

bool AgentLink::HelloProofValid(const proto::Frame& frame) const {
  auto proof = frame.Bytes(Tag::kProof);
  uint8_t exporter[proto::kExporterBytes];
  const bool tls = stream_->ExportKeyingMaterial(proto::kExporterLabel, exporter);
  const proto::ManagerProofInput in{
      .agent_id = agent_id_,
      .agent_nonce = agent_nonce_,
      .manager_nonce = manager_nonce_,
      .transport = tls ? proto::Transport::kTls : proto::Transport::kPlain,
      .exporter = tls ? std::span<const uint8_t>(exporter) : std::span<const uint8_t>()};
  const proto::Digest expected = proto::ManagerAgentProof(secret_, in);
  return proof && proto::ConstantTimeEqual(expected, *proof);
}

void AgentLink::HandleHello(const proto::Frame& frame) {
  if (!HelloProofValid(frame)) {
    Fail(proto::ErrorCode::kBadProof, "bad proof", &server_.counters().link_bad_proof);
    return;
  }
  version_ = std::string(frame.Text(Tag::kVersion).value_or(""));
  state_ = State::kEstablished;
  counted_unauthenticated_ = false;
  server_.ReleaseUnauthenticated();
  server_.Register(this);
  registered_ = true;
  ++server_.counters().links_established;
  connected_wall_ms_ = ManagerServer::WallMs();
  server_.store().RecordStatus(agent_id_, "linked", connected_wall_ms_).IgnoreError();
  FrameBuilder welcome(FrameType::kWelcome);
  welcome.AddU32(Tag::kCapabilities, proto::kCapPlainFrameMac)
      .AddU32(Tag::kHeartbeatMs, server_.config().heartbeat_ms)
      .AddU64(Tag::kServerTimeMs, static_cast<uint64_t>(connected_wall_ms_))
      .AddU32(Tag::kReconnectWindowMs, 0);
  Send(welcome);
  deadline_.set_callback([this] { OnHeartbeat(); });
  server_.shard().timers().Arm(deadline_, server_.shard().now_ms(), server_.config().heartbeat_ms);
  refresh_.set_callback([this] { OnKeyRefresh(); });
  SendAssign();
}

void AgentLink::SendAssign(std::string_view preferred) {
  if (state_ != State::kEstablished) {
    return;
  }
  std::vector<proto::AssignedStreamer> list = server_.AssignmentFor(agent_id_, preferred);
  if (list.empty()) {
    return;  // no Streamer configured: the agent waits for one
  }
  FrameBuilder assign = proto::BuildAssign(seal_key_, agent_id_, list);
  Send(assign);
  ++server_.counters().assigns_sent;
  server_.store()
      .RecordAssignment(agent_id_, list.front().url, ManagerServer::WallMs())
      .IgnoreError();
  for (auto& s : assigned_) {
    OPENSSL_cleanse(s.agent_key.data(), s.agent_key.size());
  }
  assigned_ = std::move(list);
  ArmKeyRefresh();
}

void AgentLink::ArmKeyRefresh() {
  if (assigned_.empty()) {
    return;
  }
  server_.shard().timers().Arm(
      refresh_, server_.shard().now_ms(),
      RefreshDelayMs(assigned_.front().key_ref.expiry, ManagerServer::WallMs()));
}

void AgentLink::OnKeyRefresh() { SendAssign(); }

void AgentLink::SendSwitch(std::string_view url, std::string_view reason) {
  FrameBuilder f(FrameType::kSwitch);
  f.AddText(Tag::kRedirect, url).AddText(Tag::kText, reason);
  Send(f);
  ++server_.counters().commands_sent;
}

void AgentLink::SendDeactivate(std::string_view reason) {
  FrameBuilder f(FrameType::kDeactivate);
  f.AddText(Tag::kText, reason);
  Send(f);
  ++server_.counters().commands_sent;
  CloseGracefully();
}

void AgentLink::SendRestart(std::string_view reason) {
  FrameBuilder f(FrameType::kRestart);
  f.AddText(Tag::kText, reason);
  Send(f);
  ++server_.counters().commands_sent;
  CloseGracefully();
}

void AgentLink::Replace() {
  ++server_.counters().links_replaced;
  registered_ = false;  // the registry already points at the newer link
  FrameBuilder f(FrameType::kGoaway);
  f.AddU32(Tag::kReconnectAfterMs, 0).AddText(Tag::kText, "replaced");
  Send(f);
  CloseGracefully();
}

// PING when nothing was sent for an interval; dead after two silent intervals.
void AgentLink::OnHeartbeat() {
  const uint64_t now = server_.shard().now_ms();
  const uint64_t interval = server_.config().heartbeat_ms;
  if (now - last_rx_ms_ >= 2 * interval) {
    Fail(proto::ErrorCode::kTimeout, "no frame for two heartbeat intervals",
         &server_.counters().link_timeouts);
    return;
  }
  if (now - last_tx_ms_ >= interval) {
    FrameBuilder ping(FrameType::kPing);
    ping.AddU64(Tag::kSequence, next_ping_++);
    Send(ping);
  }
  server_.shard().timers().Arm(deadline_, now, interval);
}

void AgentLink::OnStreamEof(runtime::Stream& /*stream*/) { CloseGracefully(); }

void AgentLink::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  state_ = State::kClosed;
  server_.shard().timers().Cancel(deadline_);
  server_.shard().timers().Cancel(refresh_);
  if (counted_unauthenticated_) {
    server_.ReleaseUnauthenticated();
  }
  if (registered_) {
    server_.Unregister(this);
  }
  OPENSSL_cleanse(secret_.data(), secret_.size());
  OPENSSL_cleanse(seal_key_.data(), seal_key_.size());
  for (auto& s : assigned_) {
    OPENSSL_cleanse(s.agent_key.data(), s.agent_key.size());
  }
  delete this;
}

}  // namespace camtunnel::manager
