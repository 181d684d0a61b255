// One request and its answer, as a route's handler sees it (server.h). The handler answers at
// once (Respond, Json, Error), or later through a Reply (Later()), or reads the body first
// (ReadBody). The Exchange is valid during the handler call and, while no answer was sent, until
// the connection closes: anything that answers later holds a Reply, never the Exchange.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "http/router.h"
#include "proto/http_head.h"
#include "runtime/stream.h"

namespace camtunnel::http {

class EventStream;
class Reply;

class Exchange {
 public:
  const proto::RequestHead& head() const { return head_; }
  std::string_view method() const { return head_.method; }
  // The target before '?', as sent, and the raw query after it (proto/http_query.h parses it).
  std::string_view path() const { return path_; }
  std::string_view raw_query() const { return query_; }
  // A `{name}` capture of the route's pattern (empty if the pattern has none of that name).
  std::string_view param(std::string_view name) const;
  runtime::Stream& stream() const { return *stream_; }

  // The answer; the first call wins, later ones are ignored. Error bodies are
  // {"error":"<message>"} (proto/http_answer.h), the same on every server.
  virtual void Respond(int status, std::string_view content_type, std::string_view body,
                       std::span<const proto::HeaderField> extra = {}) = 0;
  void Json(int status, std::string_view body) { Respond(status, "application/json", body); }
  void Error(int status, std::string_view message, std::span<const proto::HeaderField> extra = {});
  bool answered() const { return answered_; }
  // Counts the requests of a connection (keep-alive), so a Reply answers only its own.
  uint64_t serial() const { return serial_; }

  // Runs `then` with the body once all of it has arrived: exactly one Content-Length (no
  // chunked bodies: 411), at most `limit` bytes (413, answered on the head alone).
  using BodyHandler = absl::AnyInvocable<void(Exchange&, std::string_view body)>;
  virtual void ReadBody(size_t limit, BodyHandler then) = 0;

  // For an answer that comes later (another shard, a camera): answering through it after the
  // connection has closed does nothing.
  virtual Reply Later() = 0;
  // Runs if the connection closes before the answer (to cancel the work that would give it).
  virtual void OnAbort(std::function<void()> fn) = 0;

  // Hands the whole connection to another owner (the same API on another shard): once the
  // stream is detached (runtime/stream.h), `hand` gets it, this connection's handler, and every
  // byte read so far (this request's head included, to be read again there by Server::Adopt).
  // `hand` returns false if it could not take them, having attached the stream back to
  // `current` on this shard: the request is then answered 503.
  using HandOff = absl::AnyInvocable<bool(runtime::Stream* stream, runtime::StreamHandler* current,
                                          std::string bytes) &&>;
  virtual void MoveConnection(HandOff hand) = 0;

  // A protocol upgrade: the stream leaves the server with the bytes after this request's head,
  // and the caller must give it a handler at once. The Exchange is gone after this call. A
  // stream the server does not own (Server::Serve) is not given: null.
  struct Taken {
    runtime::Stream* stream;
    std::string rest;
  };
  virtual Taken TakeStream() = 0;

  // Server-sent events: answers 200 text/event-stream and keeps the connection open (no
  // request deadline) for the returned stream's events. See event_stream.h.
  virtual std::unique_ptr<EventStream> OpenEventStream() = 0;

 protected:
  Exchange() = default;
  virtual ~Exchange() = default;

  proto::RequestHead head_;
  std::string_view path_;
  std::string_view query_;
  PathParams params_;
  runtime::Stream* stream_ = nullptr;
  bool answered_ = false;
  uint64_t serial_ = 0;
};

// A handle to an exchange that may be answered later. Copyable; answering through a handle
// whose connection closed, or which was already answered, does nothing.
class Reply {
 public:
  Reply() = default;
  Reply(std::shared_ptr<Exchange*> link, uint64_t serial)
      : link_(std::move(link)), serial_(serial) {}

  // The exchange if it still waits for this answer, else null.
  Exchange* exchange() const;
  bool alive() const { return exchange() != nullptr; }
  void Respond(int status, std::string_view content_type, std::string_view body,
               std::span<const proto::HeaderField> extra = {}) const;
  void Json(int status, std::string_view body) const { Respond(status, "application/json", body); }
  void Error(int status, std::string_view message) const;

 private:
  std::shared_ptr<Exchange*> link_;  // null once the connection is gone
  uint64_t serial_ = 0;              // the request this handle answers on a kept-alive connection
};

}  // namespace camtunnel::http
