#include "gateway/spare_pool.h"

#include <algorithm>
#include <cerrno>
#include <memory>

#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "gateway/tunnel_waiter.h"
#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "runtime/log.h"
#include "runtime/stream.h"

namespace camtunnel::gateway {
namespace {

// This abseil's maps take absl::string_view, which is not std::string_view here.
absl::string_view Key(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

// A SPARE sent; ends when the agent's data connection is proven (the spare is parked), at the
// open deadline, or with the agent's session.
class SparePool::Request final : public TunnelWaiter {
 public:
  Request(SparePool& pool, std::string agent_id, proto::TunnelId id)
      : pool_(pool), agent_id_(std::move(agent_id)), id_(id) {
    timer_.set_callback([this] {
      pool_.gw_.registry().TakePending(id_);
      pool_.gw_.metrics().CountSpare(SpareEvent::kExpired);
      End();
    });
    GatewayShard& gw = pool_.gw_;
    gw.shard().timers().Arm(timer_, gw.shard().now_ms(), gw.config().open_timeout_ms);
  }

  void OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes,
                        size_t sent_ahead) override;
  void OnOpenFailed(int /*error*/, std::string_view /*text*/) override { End(); }
  void OnAgentGone() override { End(); }

 private:
  void End() {
    pool_.gw_.shard().timers().Cancel(timer_);
    pool_.RequestEnded(agent_id_);
    delete this;
  }

  SparePool& pool_;
  std::string agent_id_;
  proto::TunnelId id_;
  runtime::Timer timer_;
};

// A proven spare waiting for an open. Nothing may arrive on it before the gateway's OPEN.
class SparePool::Spare final : public runtime::StreamHandler {
 public:
  Spare(SparePool& pool, std::string agent_id, runtime::Stream* stream)
      : pool_(pool), agent_id_(std::move(agent_id)), stream_(stream) {
    stream_->set_handler(this);
    idle_.set_callback([this] {
      pool_.gw_.metrics().CountSpare(SpareEvent::kExpired);
      pool_.Expired(agent_id_);
      stream_->Close(0);
    });
    GatewayShard& gw = pool_.gw_;
    gw.shard().timers().Arm(idle_, gw.shard().now_ms(), gw.config().spare_idle_ms);
  }

  const std::string& agent_id() const { return agent_id_; }
  runtime::Stream* stream() { return stream_; }
  bool parked = false;

  // Hands the stream (and its connection count) to whoever uses it; this object is freed.
  runtime::Stream* Release() {
    pool_.gw_.shard().timers().Cancel(idle_);
    runtime::Stream* s = stream_;
    delete this;
    return s;
  }

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> /*bytes*/) override {
    pool_.gw_.metrics().CountSpare(SpareEvent::kProtocolError);
    runtime::LogEvent(
        runtime::LogLevel::kInfo, "spare_refused",
        {runtime::Kv("agent", agent_id_), runtime::Kv("reason", "bytes before OPEN")});
    stream.Close(EPROTO);
  }
  void OnStreamEof(runtime::Stream& stream) override { stream.Close(0); }
  void OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) override {
    pool_.gw_.shard().timers().Cancel(idle_);
    pool_.gw_.ConnectionClosed();
    if (parked) {
      pool_.Unpark(this);
    }
    delete this;
  }

 private:
  SparePool& pool_;
  std::string agent_id_;
  runtime::Stream* stream_;
  runtime::Timer idle_;
};

// OPEN written on a spare; the agent's first frame decides: OPENED hands the stream to the
// pending tunnel's waiter, OPEN_FAILED fails it, and a spare that dies first falls back to OPEN
// on the control connection (PROTOCOL.md 8.1).
class SparePool::Binding final : public runtime::StreamHandler {
 public:
  Binding(SparePool& pool, runtime::Stream* stream, std::string agent_id, proto::TunnelId id)
      : pool_(pool), stream_(stream), agent_id_(std::move(agent_id)), id_(id) {
    stream_->set_handler(this);
    deadline_.set_callback([this] {
      timed_out_ = true;  // the waiter's own deadline answers the media server
      stream_->Close(ETIMEDOUT);
    });
    GatewayShard& gw = pool_.gw_;
    gw.shard().timers().Arm(deadline_, gw.shard().now_ms(), gw.config().open_timeout_ms);
  }

  // OPEN, then the media server's first bytes when the agent takes them before its answer:
  // the camera gets the request one round trip sooner.
  void Send(std::string_view service, const proto::Nonce& nonce, std::string_view early) {
    proto::FrameBuilder open(proto::FrameType::kOpen);
    open.AddText(proto::Tag::kTunnelId, proto::FormatTunnelId(id_))
        .AddText(proto::Tag::kServiceName, service)
        .Add(proto::Tag::kNonce, nonce);
    stream_->Write(open.Finish());
    if (!early.empty()) {
      stream_->Write(early);
      sent_ahead_ = early.size();
      pool_.gw_.metrics().CountSpare(SpareEvent::kSentAhead);
    }
  }

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override {
    if (answered_) {
      return;  // closing after a refusal; what follows is dropped
    }
    proto::Frame frame;
    const proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
    if (st == proto::DecodeStatus::kNeedMore) {
      return;
    }
    answered_ = true;
    const auto id_text = st == proto::DecodeStatus::kFrame && frame.Valid()
                             ? frame.Text(proto::Tag::kTunnelId)
                             : std::nullopt;
    const bool ours = id_text && proto::ParseTunnelId(*id_text) == id_;
    const auto type = static_cast<proto::FrameType>(frame.type());
    if (ours && type == proto::FrameType::kOpened) {
      std::optional<PendingTunnel> pending = pool_.gw_.registry().TakePending(id_);
      if (!pending) {
        stream.Close(0);  // the media server left meanwhile
        return;
      }
      pool_.gw_.metrics().CountSpare(SpareEvent::kOpened);
      pool_.gw_.shard().timers().Cancel(deadline_);
      // The waiter takes the stream, its handler slot and its connection count.
      pending->waiter->OnDataConnection(stream_, bytes, sent_ahead_);
      delete this;
      return;
    }
    int error = EPROTO;
    std::string_view text = "malformed answer on a spare data connection";
    if (ours && type == proto::FrameType::kOpenFailed) {
      error = static_cast<int>(frame.U32(proto::Tag::kErrno).value_or(0));
      text = frame.Text(proto::Tag::kText).value_or("");
      pool_.gw_.metrics().CountSpare(SpareEvent::kCameraRefused);
    } else {
      pool_.gw_.metrics().CountSpare(SpareEvent::kProtocolError);
      runtime::LogEvent(
          runtime::LogLevel::kInfo, "spare_refused",
          {runtime::Kv("agent", agent_id_), runtime::Kv("reason", "bad answer to OPEN")});
    }
    if (std::optional<PendingTunnel> pending = pool_.gw_.registry().TakePending(id_)) {
      pending->waiter->OnOpenFailed(error, text);
    }
    stream.Close(error == EPROTO ? EPROTO : 0);
  }

  void OnStreamEof(runtime::Stream& stream) override { stream.Close(0); }

  void OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) override {
    GatewayShard& gw = pool_.gw_;
    gw.shard().timers().Cancel(deadline_);
    gw.ConnectionClosed();
    if (!answered_ && !timed_out_) {
      // Lost before the agent answered (a NAT that forgot it, an agent restart): the tunnel is
      // still pending under the same id, so the ordinary OPEN takes over.
      const PendingTunnel* pending = gw.registry().FindPending(id_);
      ControlSession* session = gw.registry().Find(agent_id_);
      if (pending != nullptr && session != nullptr && session->verified()) {
        gw.metrics().CountSpare(SpareEvent::kFellBack);
        session->SendOpen(id_, pending->service, pending->nonce);
      }
    }
    delete this;
  }

 private:
  SparePool& pool_;
  runtime::Stream* stream_;
  std::string agent_id_;
  proto::TunnelId id_;
  proto::FrameDecoder decoder_;
  runtime::Timer deadline_;
  size_t sent_ahead_ = 0;
  bool answered_ = false;
  bool timed_out_ = false;
};

void SparePool::Request::OnDataConnection(runtime::Stream* data,
                                          std::span<const uint8_t> camera_bytes,
                                          size_t /*sent_ahead*/) {
  GatewayShard& gw = pool_.gw_;
  auto* spare = new Spare(pool_, agent_id_, data);
  const ControlSession* session = gw.registry().Find(agent_id_);
  if (!camera_bytes.empty()) {
    gw.metrics().CountSpare(SpareEvent::kProtocolError);
    data->Close(EPROTO);
  } else if (session == nullptr || !session->verified()) {
    data->Close(0);  // its session ended meanwhile
  } else {
    gw.metrics().CountSpare(SpareEvent::kHeld);
    pool_.Park(agent_id_, spare);
  }
  End();
}

void SparePool::TopUp(ControlSession& session) {
  const GatewayConfig& config = gw_.config();
  if (config.spare_data_connections == 0 || (session.capabilities() & proto::kCapSpareData) == 0 ||
      !session.verified()) {
    return;
  }
  const std::string& agent = session.agent_id();
  AgentSpares& spares = agents_[agent];
  const uint32_t wanted =
      std::min(config.spare_data_connections + spares.extra, config.spare_data_connections_max);
  while (spares.held.size() + spares.requested < wanted &&
         gw_.registry().PendingFor(agent) < gw_.config().max_pending_tunnels_per_agent) {
    const proto::TunnelId id = gw_.registry().NewTunnelId(gw_.shard().id());
    PendingTunnel pending;
    pending.agent_id = agent;
    proto::RandomBytes(pending.nonce);
    pending.waiter = new Request(*this, agent, id);
    const proto::Nonce nonce = pending.nonce;
    gw_.registry().AddPending(id, std::move(pending));
    ++spares.requested;
    gw_.metrics().CountSpare(SpareEvent::kRequested);
    session.SendSpare(id, nonce);
  }
  if (spares.held.empty() && spares.requested == 0) {
    agents_.erase(agent);
  }
}

bool SparePool::Use(ControlSession& session, proto::TunnelId id, std::string_view service,
                    TunnelWaiter& waiter, std::string_view camera_authority) {
  auto it = agents_.find(Key(session.agent_id()));
  if (it == agents_.end()) {
    return false;
  }
  AgentSpares& spares = it->second;
  if (spares.held.empty()) {
    if (spares.requested > 0) {
      // One is on its way, so this agent opens faster than a spare comes back: keep one more.
      gw_.metrics().CountSpare(SpareEvent::kMissed);
      if (gw_.config().spare_data_connections + spares.extra <
          gw_.config().spare_data_connections_max) {
        ++spares.extra;
      }
    }
    return false;
  }
  const PendingTunnel* pending = gw_.registry().FindPending(id);
  if (pending == nullptr) {
    return false;
  }
  // The newest: the NAT state along its path is the freshest.
  Spare* spare = spares.held.back();
  Unpark(spare);
  runtime::Stream* stream = spare->Release();
  gw_.metrics().CountSpare(SpareEvent::kUsed);
  auto* binding = new Binding(*this, stream, session.agent_id(), id);
  const bool early = (session.capabilities() & proto::kCapSpareEarlyData) != 0;
  binding->Send(service, pending->nonce, early ? waiter.FirstBytes(camera_authority) : "");
  return true;
}

void SparePool::DropAgent(std::string_view agent_id) {
  auto it = agents_.find(Key(agent_id));
  if (it == agents_.end()) {
    return;
  }
  // Closing unparks each (OnStreamClosed, from the loop); iterate over a copy.
  const std::vector<Spare*> held = it->second.held;
  for (Spare* spare : held) {
    spare->stream()->Close(0);
  }
}

void SparePool::Park(const std::string& agent_id, Spare* spare) {
  agents_[agent_id].held.push_back(spare);
  spare->parked = true;
  ++held_;
  gw_.metrics().spares_held.Add(1);
}

void SparePool::Unpark(Spare* spare) {
  spare->parked = false;
  auto it = agents_.find(Key(spare->agent_id()));
  if (it == agents_.end()) {
    return;
  }
  std::vector<Spare*>& held = it->second.held;
  held.erase(std::remove(held.begin(), held.end(), spare), held.end());
  --held_;
  gw_.metrics().spares_held.Add(-1);
  if (held.empty() && it->second.requested == 0) {
    agents_.erase(it);
  }
}

void SparePool::Expired(std::string_view agent_id) {
  auto it = agents_.find(Key(agent_id));
  if (it != agents_.end() && it->second.extra > 0) {
    --it->second.extra;
  }
}

void SparePool::RequestEnded(std::string_view agent_id) {
  auto it = agents_.find(Key(agent_id));
  if (it == agents_.end() || it->second.requested == 0) {
    return;
  }
  --it->second.requested;
  if (it->second.held.empty() && it->second.requested == 0) {
    agents_.erase(it);
  }
}

}  // namespace camtunnel::gateway
