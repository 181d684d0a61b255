// See link_io.h.
#include "agent/link_io.h"

#include <algorithm>

namespace camtunnel::agent {

LinkIo::LinkIo(EventLoop& loop, proto::ControlLink& link, std::string_view peer)
    : loop_(loop), link_(link), peer_(peer) {}

void LinkIo::Attach(std::unique_ptr<Transport> transport) {
  transport_ = std::move(transport);
  watch_.Start(loop_, transport_->fd(), POLLIN, [this](short) { Pump(); });
}

void LinkIo::Pump() {
  if (!transport_) {
    return;
  }
  ++pump_depth_;
  bool progress = true;
  while (progress && transport_ && !link_.ended()) {
    progress = false;
    write_wait_ = IoStatus::kOk;
    while (!out_.empty()) {
      size_t n = 0;
      const IoStatus st = transport_->Write(out_, &n);
      if (st == IoStatus::kOk) {
        out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(n));
        continue;
      }
      if (st == IoStatus::kError) {
        link_.Abort(transport_->error_text());
      } else {
        write_wait_ = st;
      }
      break;
    }
    if (pump_depth_ > 1 || !transport_ || link_.ended()) {
      break;
    }
    uint8_t buf[4096];
    size_t n = 0;
    const IoStatus st = transport_->Read(buf, &n);
    read_wait_ = IoStatus::kOk;
    if (st == IoStatus::kOk && n > 0) {
      link_.Receive(std::span<const uint8_t>(buf, n), NowUs());
      progress = true;
    } else if (st == IoStatus::kEof) {
      link_.PeerClosed(peer_ + " closed the connection");
    } else if (st == IoStatus::kError) {
      link_.Abort(transport_->error_text());
    } else {
      read_wait_ = st;
    }
  }
  --pump_depth_;
  UpdateInterest();
}

void LinkIo::UpdateInterest() {
  if (transport_) {
    watch_.SetEvents(static_cast<short>(PollEventsFor(read_wait_) | PollEventsFor(write_wait_)));
  }
}

void LinkIo::ArmHeartbeat() {
  const int64_t due = link_.next_tick_us();
  if (due < 0 || !transport_) {
    return;
  }
  const int64_t delay_ms = (due - NowUs() + 999) / 1000;
  heartbeat_timer_.Start(loop_, std::max<int64_t>(delay_ms, 1), [this] {
    // The link sends PING or declares the peer dead (proto/control_link.h has the rule).
    link_.Tick(NowUs());
    Pump();
    ArmHeartbeat();
  });
}

void LinkIo::Close() {
  heartbeat_timer_.Cancel();
  watch_.Stop();
  if (transport_) {
    // Best effort, without waiting: push out a queued ERROR and a TLS close_notify.
    size_t n = 0;
    if (!out_.empty()) {
      transport_->Write(out_, &n);
    }
    if (n == out_.size()) {
      transport_->ShutdownWrite();
    }
    transport_.reset();
  }
  out_.clear();
}

}  // namespace camtunnel::agent
