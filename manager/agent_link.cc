// See agent_link.h.
#include "manager/agent_link.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "manager/manager_server.h"
#include "proto/manager_command.h"
#include "proto/upgrade.h"
#include "runtime/clock.h"
#include "runtime/log.h"

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
      link_(server.link_profile(), *this),
      agent_id_(agent.agent_id),
      seal_key_(proto::KeySealKey(agent.secret, agent.agent_id)),
      located_url_(agent.located_url),
      assigned_url_(agent.streamer_url),
      ever_linked_(agent.last_seen_ms != 0) {}

void AgentLink::Start(ManagerServer& server, runtime::Stream* stream,
                      const proto::ManagerUpgrade& upgrade, const AgentRecord& agent,
                      std::span<const uint8_t> leftover) {
  auto* link = new AgentLink(server, stream, agent);
  stream->set_handler(link);
  uint8_t exporter[proto::kExporterBytes];
  const bool tls = stream->ExportKeyingMaterial(proto::kExporterLabel, exporter);
  const int64_t now = runtime::MonotonicUs();
  link->deadline_.set_callback([link] { link->OnTimer(); });
  link->link_.AcceptUpgrade(
      {.agent_id = agent.agent_id, .key = &agent.secret}, upgrade.agent_nonce,
      tls ? proto::Transport::kTls : proto::Transport::kPlain,
      tls ? std::span<const uint8_t>(exporter) : std::span<const uint8_t>(), now,
      now + static_cast<int64_t>(server.config().handshake_timeout_ms) * 1000);
  link->ArmTimer(link->link_.next_tick_us());
  if (!leftover.empty()) {
    link->OnStreamData(*stream, leftover);
  }
}

void AgentLink::WriteLinkOutput(std::span<const uint8_t> bytes) { stream_->Write(bytes); }

size_t AgentLink::QueuedLinkOutput() const { return stream_->queued_bytes(); }

void AgentLink::CloseGracefully() {
  if (closed_) {
    return;
  }
  closed_ = true;
  server_.shard().timers().Cancel(deadline_);
  server_.shard().timers().Cancel(refresh_);
  stream_->Finish();
}

void AgentLink::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  link_.Receive(bytes, runtime::MonotonicUs());
}

void AgentLink::OnLinkFrame(const proto::Frame& frame) {
  if (frame.type() == static_cast<uint8_t>(FrameType::kAck)) {
    OnAck(frame);
    return;
  }
  OnStatus(frame.Text(Tag::kText).value_or(""));  // STATUS: the only other frame it takes
}

void AgentLink::OnAck(const proto::Frame& frame) {
  const std::optional<proto::CommandAck> ack = proto::ParseAck(frame);
  // Only for an id sent on this link: an agent cannot end another command's row.
  if (!ack || awaiting_ack_.erase(ack->command_id) == 0) {
    return;
  }
  MarkSeen();
  server_.commands().Acked(*this, ack->command_id, ack->outcome);
}

void AgentLink::ClaimInRegistry() {
  server_.store().Run<absl::StatusOr<int64_t>>(
      agent_id_,
      [id = agent_id_, manager = server_.config().manager_id,
       at = connected_wall_ms_](StoreConnection& c) { return c.ClaimLink(id, manager, at); },
      [&server = server_, id = agent_id_, serial = serial_](absl::StatusOr<int64_t> epoch) {
        server.store().Observe(epoch.status());
        AgentLink* link = server.FindLink(id);
        if (link == nullptr || link->serial() != serial || !epoch.ok()) {
          return;  // gone meanwhile (its close releases the claim), or the store failed
        }
        link->epoch_ = *epoch;
        server.commands().LinkClaimed(*link);
      });
}

void AgentLink::Deliver(const CommandRecord& command) {
  const bool acks = (link_.peer_capabilities() & proto::kCapCommandAck) != 0;
  const uint64_t id = acks ? static_cast<uint64_t>(command.id) : 0;
  FrameType type = FrameType::kRestart;
  std::string text = "restart requested by the operator";
  if (command.kind == "switch") {
    type = FrameType::kSwitch;
    text = "moved by the operator";
    SendAssign(command.argument);  // the target first in the list the SWITCH must name
  } else if (command.kind == "deactivate") {
    type = FrameType::kDeactivate;
    text = "deactivated by the operator";
  }
  FrameBuilder f = proto::BuildCommand(type, text, id, command.argument);
  link_.Send(f, runtime::MonotonicUs());
  ++server_.counters().commands_sent;
  if (acks) {
    // The agent acknowledges, then ends the link itself after DEACTIVATE or RESTART.
    awaiting_ack_.insert(id);
    return;
  }
  server_.commands().SentWithoutAck(command.id);
  if (type != FrameType::kSwitch) {
    link_.Close(std::string(proto::FrameTypeName(static_cast<uint8_t>(type))) + " sent");
  }
}

// Counts how the link ended and lets the stream go, after this end's last word if it had one.
void AgentLink::OnLinkEnded(const proto::LinkEnd& end) {
  ManagerCounters& counters = server_.counters();
  switch (end.reason) {
    case proto::LinkEndReason::kBadProof:
      ++counters.link_bad_proof;
      break;
    case proto::LinkEndReason::kTimeout:
      ++counters.link_timeouts;
      break;
    case proto::LinkEndReason::kProtocol:
      if (end.sent == proto::ErrorCode::kFrameTooLarge) {
        ++counters.link_oversized_frames;
      } else if (end.sent == proto::ErrorCode::kBadMac) {
        ++counters.link_bad_macs;
        runtime::LogEvent(runtime::LogLevel::kWarning, "link_bad_mac",
                          {runtime::Kv("agent", agent_id_), runtime::Kv("remote", remote()),
                           runtime::Kv("detail", end.detail)});
      } else {
        ++counters.link_malformed_frames;
      }
      break;
    case proto::LinkEndReason::kPeerError:
      // An agent that found a bad MAC on our frames (tampering on the way down) says so before
      // it closes: counted here, where the operator looks.
      if (end.peer_code == static_cast<uint16_t>(proto::ErrorCode::kBadMac)) {
        ++counters.link_agent_bad_macs;
        runtime::LogEvent(runtime::LogLevel::kWarning, "agent_reports_bad_mac",
                          {runtime::Kv("agent", agent_id_), runtime::Kv("remote", remote()),
                           runtime::Kv("text", end.peer_text)});
      }
      break;
    case proto::LinkEndReason::kNotReading:
      closed_ = true;
      server_.shard().timers().Cancel(deadline_);
      server_.shard().timers().Cancel(refresh_);
      stream_->Close(ENOBUFS);
      return;
    default:
      break;
  }
  CloseGracefully();
}

void AgentLink::ArmTimer(int64_t due_us) {
  if (due_us >= 0) {
    server_.shard().timers().Arm(deadline_, server_.shard().now_ms(), runtime::MsUntil(due_us));
  }
}

// The HELLO deadline, then the heartbeats (the rule is proto/control_link.h's).
void AgentLink::OnTimer() { ArmTimer(link_.Tick(runtime::MonotonicUs())); }

void AgentLink::MarkSeen(std::string_view status) {
  last_seen_wall_ms_ = ManagerServer::WallMs();
  if (status.empty() && last_seen_wall_ms_ - seen_written_ms_ <
                            static_cast<int64_t>(server_.config().seen_resolution_ms)) {
    return;
  }
  seen_written_ms_ = last_seen_wall_ms_;
  server_.seen().Touch(agent_id_, last_seen_wall_ms_, status);
}

void AgentLink::OnLinkHeartbeat(Heartbeat what) {
  if (what != Heartbeat::kPingSent) {
    MarkSeen();
  }
}

void AgentLink::OnStatus(std::string_view text) {
  ++server_.counters().status_received;
  last_status_ = std::string(text);
  MarkSeen(last_status_);
  // Only a configured Streamer is taken: the text is the agent's word, and it ends up in
  // lookups and in relocation pushes to gateways.
  const std::string_view at = ConnectedStreamer(last_status_);
  if (at.empty() || at == located_url_ || !server_.pool().Find(at)) {
    return;
  }
  std::string from = std::exchange(located_url_, std::string(at));
  server_.store().Write("location", agent_id_,
                        [id = agent_id_, url = located_url_](StoreConnection& c) {
                          return c.RecordLocation(id, url);
                        });
  server_.AgentLocated(agent_id_, from, located_url_);
}

bool AgentLink::HeldBy(std::string_view url) const {
  if (!located_url_.empty()) {
    return located_url_ == url;
  }
  return !assigned_.empty() && assigned_.front().url == url;
}

void AgentLink::OnLinkHello(const proto::Frame& frame) {
  version_ = std::string(frame.Text(Tag::kVersion).value_or(""));
  counted_unauthenticated_ = false;
  server_.ReleaseUnauthenticated();
  server_.Register(this);
  registered_ = true;
  serial_ = server_.NextLinkSerial();
  ++server_.counters().links_established;
  connected_wall_ms_ = ManagerServer::WallMs();
  last_seen_wall_ms_ = connected_wall_ms_;
  seen_written_ms_ = connected_wall_ms_;
  if (ever_linked_) {
    server_.seen().Touch(agent_id_, connected_wall_ms_, "linked");
  } else {
    // Written at once, not batched: a secret that has been used on a link is never issued
    // again (enrollment.cc), and the store must know that before the next activation asks.
    server_.store().Write("status", agent_id_,
                          [id = agent_id_, at = connected_wall_ms_](StoreConnection& c) {
                            return c.RecordStatus(id, "linked", at);
                          });
  }
  ClaimInRegistry();
}

void AgentLink::OnLinkEstablished(const proto::LinkWelcome& /*welcome*/) {
  ArmTimer(link_.next_tick_us());
  refresh_.set_callback([this] { OnKeyRefresh(); });
  SendAssign();
}

void AgentLink::SendAssign(std::string_view preferred) {
  if (!link_.established()) {
    return;
  }
  std::vector<proto::AssignedStreamer> list =
      server_.AssignmentFor(agent_id_, assigned_url_, preferred);
  if (list.empty()) {
    return;  // no Streamer configured: the agent waits for one
  }
  FrameBuilder assign = proto::BuildAssign(seal_key_, agent_id_, list);
  link_.Send(assign, runtime::MonotonicUs());
  ++server_.counters().assigns_sent;
  if (list.front().url != assigned_url_) {
    // Key refreshes repeat the same first entry: written only when it changes.
    server_.load().Moved(assigned_url_, list.front().url);
    assigned_url_ = list.front().url;
    server_.store().Write("assignment", agent_id_,
                          [id = agent_id_, url = assigned_url_, at = ManagerServer::WallMs()](
                              StoreConnection& c) { return c.RecordAssignment(id, url, at); });
  }
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
  link_.Send(f, runtime::MonotonicUs());
  ++server_.counters().commands_sent;
}

void AgentLink::SendDeactivate(std::string_view reason) {
  FrameBuilder f(FrameType::kDeactivate);
  f.AddText(Tag::kText, reason);
  link_.Send(f, runtime::MonotonicUs());
  ++server_.counters().commands_sent;
  link_.Close("DEACTIVATE sent");
}

void AgentLink::SendRestart(std::string_view reason) {
  FrameBuilder f(FrameType::kRestart);
  f.AddText(Tag::kText, reason);
  link_.Send(f, runtime::MonotonicUs());
  ++server_.counters().commands_sent;
  link_.Close("RESTART sent");
}

void AgentLink::Replace() {
  ++server_.counters().links_replaced;
  registered_ = false;  // the registry already points at the newer link
  link_.GoAway("replaced", 0, runtime::MonotonicUs());
}

void AgentLink::OnStreamEof(runtime::Stream& /*stream*/) {
  link_.PeerClosed("agent closed the link");
}

void AgentLink::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  closed_ = true;
  server_.shard().timers().Cancel(deadline_);
  server_.shard().timers().Cancel(refresh_);
  if (counted_unauthenticated_) {
    server_.ReleaseUnauthenticated();
  }
  if (registered_) {
    server_.Unregister(this);
  }
  if (epoch_ != 0) {
    // Unless a newer link (here or at another manager) has claimed the agent since.
    server_.store().Write("link", agent_id_,
                          [id = agent_id_, manager = server_.config().manager_id, epoch = epoch_](
                              StoreConnection& c) { return c.ReleaseLink(id, manager, epoch); });
  }
  OPENSSL_cleanse(seal_key_.data(), seal_key_.size());
  for (auto& s : assigned_) {
    OPENSSL_cleanse(s.agent_key.data(), s.agent_key.size());
  }
  delete this;
}

}  // namespace camtunnel::manager
