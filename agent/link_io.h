// The socket side of one of the agent's two links (the control connection to a gateway and the
// manager link): it queues what proto::ControlLink writes, pumps the transport from the event
// loop into the link until the socket would block, and runs the link's heartbeat timer. The
// link decides everything else; its handler (the session) forwards WriteLinkOutput here.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/event_loop.h"
#include "agent/tls_transport.h"
#include "proto/control_link.h"

namespace camtunnel::agent {

class LinkIo {
 public:
  // `peer` names the other end in the link's end detail ("gateway", "manager").
  LinkIo(EventLoop& loop, proto::ControlLink& link, std::string_view peer);
  ~LinkIo() { Close(); }
  LinkIo(const LinkIo&) = delete;
  LinkIo& operator=(const LinkIo&) = delete;

  // The link's clock (microseconds, the loop's monotonic time).
  static int64_t NowUs() { return EventLoop::NowMs() * 1000; }

  // Takes the upgraded transport and starts watching it.
  void Attach(std::unique_ptr<Transport> transport);
  Transport* transport() const { return transport_.get(); }

  void Queue(std::span<const uint8_t> bytes) {
    out_.insert(out_.end(), bytes.begin(), bytes.end());
  }
  size_t queued() const { return out_.size(); }

  // Writes what is queued and feeds what has arrived to the link, until the socket would block.
  // Re-entrant calls (a frame handler sending a frame) only write: the outer call keeps reading.
  void Pump();
  // (Re)arms the heartbeat timer for the link's next tick; each tick runs the link and pumps.
  void ArmHeartbeat();
  // Stops watching and ticking, pushes out what is queued (an ERROR, a GOAWAY) without
  // waiting, ends our direction (TLS close_notify) and drops the transport.
  void Close();

 private:
  void UpdateInterest();

  EventLoop& loop_;
  proto::ControlLink& link_;
  std::string peer_;
  std::vector<uint8_t> out_;  // encoded frames not yet written
  IoStatus read_wait_ = IoStatus::kWantRead;
  IoStatus write_wait_ = IoStatus::kOk;
  int pump_depth_ = 0;  // >1: re-entered from a frame handler
  Timer heartbeat_timer_;
  std::unique_ptr<Transport> transport_;
  IoWatch watch_;  // after transport_: unwatched before the socket closes
};

}  // namespace camtunnel::agent
