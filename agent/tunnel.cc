// See tunnel.h.
#include "agent/tunnel.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "agent/data_upgrade.h"
#include "agent/log.h"
#include "proto/control_frame.h"
#include "proto/upgrade.h"

namespace camtunnel::agent {
namespace {

// SO_LINGER 0: close() sends a RST, so the peer sees the error instead of a clean end of stream
// ("an error on one side resets the other").
void ArmReset(Transport* transport) {
  if (transport != nullptr) {
    linger lg{1, 0};
    ::setsockopt(transport->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
}

// Bytes the peer has not acknowledged yet (SIOCOUTQ); 0 when unknown.
int Unacknowledged(const Transport* transport) {
  int n = 0;
  if (transport == nullptr || ::ioctl(transport->fd(), SIOCOUTQ, &n) != 0) {
    return 0;
  }
  return n;
}

// OPEN_FAILED errno for a failed data connection: the TCP errno when there is one.
int ErrnoForOutcome(const DialOutcome& outcome) {
  if (outcome.kind == DialOutcome::Kind::kClosedEarly) {
    return ECONNRESET;
  }
  return outcome.error != 0 ? outcome.error : EPROTO;
}

}  // namespace

Tunnel::Tunnel(EventLoop& loop, TransportFactory& factory, const GatewayTarget& gateway,
               const AgentIdentity& identity, proto::TunnelId id,
               const proto::ServiceEntry& service, const proto::Nonce& open_nonce,
               Callbacks callbacks, TunnelTimings timings)
    : loop_(loop),
      factory_(factory),
      gateway_(gateway),
      identity_(identity),
      id_(id),
      id_text_(proto::FormatTunnelId(id)),
      service_(service),
      open_nonce_(open_nonce),
      callbacks_(std::move(callbacks)),
      timings_(timings),
      connector_(loop) {}

Tunnel::~Tunnel() { Abort(); }

void Tunnel::Start() {
  phase_ = Phase::kConnectingService;
  std::string host = service_.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // The deadline covers the lookup too (a service named rather than an address literal).
  deadline_.Start(loop_, timings_.service_connect_deadline_ms,
                  [this] { FailOpen(ETIMEDOUT, "connect to the service timed out"); });
  connector_.Start(host, service_.port, timings_.service_connect_deadline_ms,
                   [this](int fd, int error, const std::string& detail) {
                     OnServiceConnected(fd, error, detail);
                   });
}

void Tunnel::StartOnSpare(std::unique_ptr<Transport> gateway, std::span<const uint8_t> rest) {
  on_spare_ = true;
  gateway_conn_ = std::move(gateway);
  spare_rest_.assign(rest.begin(), rest.end());
  Start();
}

void Tunnel::OnServiceConnected(int fd, int error, const std::string& detail) {
  if (fd < 0) {
    FailOpen(error, detail);
    return;
  }
  camera_ = MakePlainTransport(fd);
  up_.src = camera_.get();
  // Read the camera at once: whatever it sends before the gateway's 101 is kept.
  camera_watch_.Start(loop_, fd, POLLIN, [this](short) { Pump(); });
  if (on_spare_) {
    // OPENED goes ahead of everything the camera says.
    proto::FrameBuilder opened(proto::FrameType::kOpened);
    opened.AddText(proto::Tag::kTunnelId, id_text_);
    up_.buffer.Append(opened.Finish());
    deadline_.Cancel();
    const std::vector<uint8_t> rest = std::move(spare_rest_);
    BeginRelay(rest);
    return;
  }
  DialGateway();
}

void Tunnel::DialGateway() {
  phase_ = Phase::kDialingGateway;
  deadline_.Start(loop_, timings_.data_connect_deadline_ms,
                  [this] { FailOpen(ETIMEDOUT, "data connection to the gateway timed out"); });
  dialer_ = std::make_unique<UpgradeDialer>(loop_, factory_, gateway_);
  dialer_->Start(DataUpgrade(identity_, gateway_.host_header, id_, open_nonce_),
                 [this](const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                        const proto::ResponseHead*, std::span<const uint8_t> leftover) {
                   OnGatewayDialed(outcome, std::move(transport), leftover);
                 });
}

void Tunnel::OnGatewayDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                             std::span<const uint8_t> leftover) {
  dialer_.reset();  // it called us last; `leftover` lives in its caller's frame
  if (outcome.kind != DialOutcome::Kind::kUpgraded) {
    FailOpen(ErrnoForOutcome(outcome), "data connection: " + DescribeOutcome(outcome));
    return;
  }
  deadline_.Cancel();
  gateway_conn_ = std::move(transport);
  BeginRelay(leftover);
}

void Tunnel::BeginRelay(std::span<const uint8_t> leftover) {
  // The media server's first bytes may have arrived with the 101 (at most a head's worth, well
  // under the buffer).
  down_.buffer.Append(leftover);
  up_.dst = gateway_conn_.get();
  down_.src = gateway_conn_.get();
  down_.dst = camera_.get();
  phase_ = Phase::kRelaying;
  LOG_INFO("tunnel %s service=%s open", id_text_.c_str(), service_.name.c_str());
  gateway_watch_.Start(loop_, gateway_conn_->fd(), POLLIN, [this](short) { Pump(); });
  Pump();
}

bool Tunnel::Direction::Step(bool* progress, std::string* error) {
  read_wait = IoStatus::kOk;
  write_wait = IoStatus::kOk;
  // Read everything available first, then write it in one go: small camera packets coalesce
  // into full TLS records, which is what per-record cost rewards.
  while (src != nullptr && !src_eof && !buffer.full()) {
    size_t n = 0;
    IoStatus st = src->Read(buffer.WritableTail(), &n);
    if (st == IoStatus::kOk && n > 0) {
      buffer.Commit(n);
      *progress = true;
    } else if (st == IoStatus::kEof) {
      src_eof = true;
      *progress = true;
    } else if (st == IoStatus::kError) {
      *error = std::string(src_name) + ": " + src->error_text();
      // What was read before the error still goes out, as far as the destination takes it now
      // (a media server's TEARDOWN followed at once by its reset must reach the camera).
      while (dst != nullptr && !buffer.empty()) {
        size_t n = 0;
        if (dst->Write(buffer.Readable(), &n) != IoStatus::kOk || n == 0) {
          break;
        }
        buffer.Consume(n);
        bytes += n;
      }
      return false;
    } else {
      read_wait = st;
      break;
    }
  }
  if (dst == nullptr) {
    return true;
  }
  while (!buffer.empty()) {
    size_t n = 0;
    IoStatus st = dst->Write(buffer.Readable(), &n);
    if (st == IoStatus::kOk && n > 0) {
      buffer.Consume(n);
      bytes += n;
      *progress = true;
    } else if (st == IoStatus::kError) {
      *error = std::string(dst_name) + ": " + dst->error_text();
      return false;
    } else {
      write_wait = st == IoStatus::kOk ? IoStatus::kWantWrite : st;
      break;
    }
  }
  if (src_eof && buffer.empty() && !shut_down) {
    IoStatus st = dst->ShutdownWrite();
    if (st == IoStatus::kOk) {
      shut_down = true;
      *progress = true;
    } else if (st == IoStatus::kError) {
      *error = std::string(dst_name) + ": " + dst->error_text();
      return false;
    } else {
      write_wait = st;
    }
  }
  return true;
}

void Tunnel::Pump() {
  if (phase_ != Phase::kDialingGateway && phase_ != Phase::kRelaying) {
    return;
  }
  bool progress = true;
  while (progress) {
    progress = false;
    std::string error;
    // Gateway -> camera first: what the gateway sent before a reset is read before a write
    // toward the gateway can fail on that reset.
    Direction* failed = nullptr;
    if (!down_.Step(&progress, &error)) {
      failed = &down_;
    } else if (!up_.Step(&progress, &error)) {
      failed = &up_;
    }
    if (failed == nullptr) {
      continue;
    }
    // One more step of the other direction delivers what its source sent before the error (a
    // media server's TEARDOWN right before its reset, while the camera streams).
    std::string ignored_error;
    bool ignored_progress = false;
    (failed == &up_ ? down_ : up_).Step(&ignored_progress, &ignored_error);
    if (phase_ == Phase::kRelaying) {
      Finish(true, error);
    } else {
      FailOpen(ECONNRESET, "service connection failed before the tunnel opened: " + error);
    }
    return;
  }
  camera_watch_.SetEvents(
      static_cast<short>(PollEventsFor(up_.read_wait) | PollEventsFor(down_.write_wait)));
  if (phase_ == Phase::kRelaying) {
    gateway_watch_.SetEvents(
        static_cast<short>(PollEventsFor(down_.read_wait) | PollEventsFor(up_.write_wait)));
    if (up_.shut_down && down_.shut_down) {
      Finish(false, "");
    }
  }
}

void Tunnel::FailOpen(int error, const std::string& text) {
  if (phase_ == Phase::kDone) {
    return;
  }
  LOG_WARNING("tunnel %s service=%s open failed: %s (errno %d)", id_text_.c_str(),
              service_.name.c_str(), text.c_str(), error);
  callbacks_.open_failed(id_, error, text);  // for a spare: counted, nothing sent
  if (on_spare_ && gateway_conn_ != nullptr) {
    // The answer goes on the spare itself; a small frame on an idle connection fits its send
    // buffer, and an orderly close (not a reset) keeps it from being discarded.
    proto::FrameBuilder failed(proto::FrameType::kOpenFailed);
    failed.AddText(proto::Tag::kTunnelId, id_text_)
        .AddU32(proto::Tag::kErrno, static_cast<uint32_t>(error))
        .AddText(proto::Tag::kText, text.substr(0, 256));
    const std::vector<uint8_t> frame = failed.Finish();
    size_t written = 0;
    gateway_conn_->Write(frame, &written);
    gateway_conn_->ShutdownWrite();
    Finish(false, "");
    return;
  }
  Finish(true, "");
}

void Tunnel::Finish(bool reset, const std::string& why) {
  if (phase_ == Phase::kDone) {
    return;
  }
  const bool was_open = phase_ == Phase::kRelaying;
  phase_ = Phase::kDone;
  deadline_.Cancel();
  connector_.Cancel();
  dialer_.reset();
  camera_watch_.Stop();
  gateway_watch_.Stop();
  up_.src = up_.dst = down_.src = down_.dst = nullptr;
  if (was_open) {
    if (reset) {
      LOG_WARNING("tunnel %s service=%s reset: %s", id_text_.c_str(), service_.name.c_str(),
                  why.c_str());
    }
    LOG_INFO("tunnel %s service=%s closed bytes_in=%llu bytes_out=%llu", id_text_.c_str(),
             service_.name.c_str(), static_cast<unsigned long long>(down_.bytes),
             static_cast<unsigned long long>(up_.bytes));
  }
  if (!reset) {
    CloseTransports(false);
    return;
  }
  reset_deadline_ms_ = EventLoop::NowMs() + kResetLingerMs;
  ResetWhenDelivered();
}

void Tunnel::ResetWhenDelivered() {
  // A reset discards what the kernel has not delivered yet: the last bytes relayed before an
  // error (a TEARDOWN) must reach the peer first. Polled each millisecond, bounded.
  if ((Unacknowledged(camera_.get()) > 0 || Unacknowledged(gateway_conn_.get()) > 0) &&
      EventLoop::NowMs() < reset_deadline_ms_) {
    finished_timer_.Start(loop_, 1, [this] { ResetWhenDelivered(); });
    return;
  }
  CloseTransports(true);
}

void Tunnel::CloseTransports(bool reset) {
  if (reset) {
    ArmReset(camera_.get());
    ArmReset(gateway_conn_.get());
  }
  camera_.reset();
  gateway_conn_.reset();
  finished_timer_.Start(loop_, 0, [this] {
    auto finished = callbacks_.finished;  // a copy: the call destroys this tunnel
    finished(id_);
  });
}

void Tunnel::Abort() {
  Finish(true, "agent shutting down");
  finished_timer_.Cancel();
  ArmReset(camera_.get());
  ArmReset(gateway_conn_.get());
  camera_.reset();
  gateway_conn_.reset();
}

}  // namespace camtunnel::agent
