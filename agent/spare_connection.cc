// See spare_connection.h.
#include "agent/spare_connection.h"

#include <optional>
#include <utility>

#include "agent/data_upgrade.h"

namespace camtunnel::agent {

SpareConnection::SpareConnection(EventLoop& loop, TransportFactory& factory,
                                 const GatewayTarget& gateway, const AgentIdentity& identity,
                                 proto::TunnelId id, const proto::Nonce& nonce, Callbacks callbacks,
                                 int64_t dial_deadline_ms)
    : loop_(loop),
      factory_(factory),
      gateway_(gateway),
      identity_(identity),
      id_(id),
      nonce_(nonce),
      callbacks_(std::move(callbacks)),
      dial_deadline_ms_(dial_deadline_ms) {}

void SpareConnection::Start() {
  deadline_.Start(loop_, dial_deadline_ms_, [this] { End("dial timed out"); });
  dialer_ = std::make_unique<UpgradeDialer>(loop_, factory_, gateway_);
  dialer_->Start(DataUpgrade(identity_, gateway_.host_header, id_, nonce_),
                 [this](DialOutcome outcome, std::unique_ptr<Transport> transport,
                        const proto::ResponseHead*, std::span<const uint8_t> leftover) {
                   OnDialed(std::move(outcome), std::move(transport), leftover);
                 });
}

void SpareConnection::OnDialed(DialOutcome outcome, std::unique_ptr<Transport> transport,
                               std::span<const uint8_t> leftover) {
  dialer_.reset();  // it called us last; `leftover` lives in its caller's frame
  if (outcome.kind != DialOutcome::Kind::kUpgraded) {
    End("dial: " + DescribeOutcome(outcome));
    return;
  }
  deadline_.Cancel();
  connection_ = std::move(transport);
  watch_.Start(loop_, connection_->fd(), POLLIN, [this](short) { OnReadable(); });
  if (!leftover.empty()) {
    OnBytes(leftover);  // the gateway may write OPEN right behind its 101
  }
}

void SpareConnection::OnReadable() {
  // Up to one frame header and a payload's worth at a time: the OPEN is all that may come
  // before the service's bytes, and those stay unread in the transport until the tunnel runs.
  uint8_t buffer[512];
  while (connection_ != nullptr && !ended_timer_.active()) {
    size_t n = 0;
    const IoStatus st = connection_->Read(buffer, &n);
    if (st == IoStatus::kWantRead || st == IoStatus::kWantWrite) {
      watch_.SetEvents(PollEventsFor(st));
      return;
    }
    if (st != IoStatus::kOk) {
      End(st == IoStatus::kEof ? "closed by the gateway" : connection_->error_text());
      return;
    }
    if (!OnBytes({buffer, n})) {
      return;  // handed over or ended: this spare may be gone
    }
  }
}

bool SpareConnection::OnBytes(std::span<const uint8_t> bytes) {
  proto::Frame frame;
  const proto::DecodeStatus st = decoder_.Decode(bytes, &frame);
  if (st == proto::DecodeStatus::kNeedMore) {
    return true;
  }
  const std::optional<proto::TunnelFields> fields =
      st == proto::DecodeStatus::kFrame && frame.Valid() &&
              frame.type() == static_cast<uint8_t>(proto::FrameType::kOpen)
          ? proto::ReadOpen(frame)
          : std::nullopt;
  if (!fields) {
    End("not an OPEN frame");
    return false;
  }
  watch_.Stop();
  auto open = callbacks_.open;  // a copy: the call may destroy this spare
  open(fields->tunnel, std::string(fields->service), std::move(connection_), bytes);
  return false;
}

void SpareConnection::End(const std::string& why) {
  if (ended_timer_.active()) {
    return;
  }
  deadline_.Cancel();
  watch_.Stop();
  dialer_.reset();
  connection_.reset();
  ended_timer_.Start(loop_, 0, [this, why] {
    auto ended = callbacks_.ended;  // a copy: the call destroys this spare
    ended(why);
  });
}

}  // namespace camtunnel::agent
