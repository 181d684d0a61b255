// Server-sent events on an HTTP connection (Exchange::OpenEventStream): the answer's head is
// sent at once, then each Send() is one event ("event:" line if named, one "data:" line per
// line of the payload, a blank line). The connection stays open until Close() or the client
// leaves; its request deadline no longer applies. Owned by whoever pushes the events; sending
// on a stream whose client left does nothing (alive() tells), and on_closed runs when it leaves.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

namespace camtunnel::http {

class EventStream {
 public:
  virtual ~EventStream() = default;
  virtual bool alive() const = 0;
  // Queued (not) sent bytes, for a pusher that drops events for a slow client.
  virtual size_t queued_bytes() const = 0;
  virtual void Send(std::string_view data, std::string_view event = "") = 0;
  // A comment line (": ...") that keeps proxies and idle timers from closing the connection.
  virtual void KeepAlive() = 0;
  virtual void Close() = 0;
  virtual void set_on_closed(std::function<void()> fn) = 0;
};

}  // namespace camtunnel::http
