// See server.h. A connection is one Connection object: it is the Exchange of the request in
// hand, and the stream's handler. Its life: reading a head -> handling (a handler runs or an
// answer is pending; reading a body) -> answered -> reading the next head (keep-alive) or
// finishing; or moving (to another shard), taken (upgrade), streaming events.
#include "http/server.h"

#include <cerrno>
#include <utility>

#include "http/event_stream.h"
#include "proto/http_answer.h"
#include "proto/http_bearer.h"

namespace camtunnel::http {

std::string_view Exchange::param(std::string_view name) const {
  for (const auto& [key, value] : params_) {
    if (key == name) {
      return value;
    }
  }
  return {};
}

void Exchange::Error(int status, std::string_view message,
                     std::span<const proto::HeaderField> extra) {
  Respond(status, "application/json", proto::JsonErrorBody(message), extra);
}

Exchange* Reply::exchange() const {
  if (!link_ || *link_ == nullptr) {
    return nullptr;
  }
  Exchange* ex = *link_;
  return ex->serial() == serial_ && !ex->answered() ? ex : nullptr;
}

void Reply::Respond(int status, std::string_view content_type, std::string_view body,
                    std::span<const proto::HeaderField> extra) const {
  if (Exchange* ex = exchange()) {
    ex->Respond(status, content_type, body, extra);
  }
}

void Reply::Error(int status, std::string_view message) const {
  if (Exchange* ex = exchange()) {
    ex->Error(status, message);
  }
}

namespace {

// Bytes kept beyond the request in hand (a pipelined next request) before reading pauses.
constexpr size_t kMaxPipelined = proto::kMaxHeadBytes;

class Connection;

// Shared between a connection streaming events and its EventStream, which may outlive it.
struct EventLink {
  Connection* connection = nullptr;
  std::function<void()> on_closed;
};

class Connection final : public Exchange, public runtime::StreamHandler {
 public:
  explicit Connection(Server& server) : server_(server) {
    timer_.set_callback([this] { OnDeadline(); });
  }

  // `bytes`: read on another shard before the connection moved here. `owned`: this connection
  // is the stream's handler (else the stream's owner passes its events in: Server::Serve).
  void Begin(runtime::Stream* stream, std::string_view bytes, bool owned = true) {
    stream_ = stream;
    owned_ = owned;
    ArmDeadline();
    if (!bytes.empty()) {
      Append(bytes);
    }
  }

  // Exchange
  void Respond(int status, std::string_view content_type, std::string_view body,
               std::span<const proto::HeaderField> extra) override;
  void ReadBody(size_t limit, BodyHandler then) override;
  Reply Later() override { return Reply(link_, serial_); }
  void OnAbort(std::function<void()> fn) override { on_abort_ = std::move(fn); }
  void MoveConnection(HandOff hand) override;
  Taken TakeStream() override;
  std::unique_ptr<EventStream> OpenEventStream() override;

  // StreamHandler
  void OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) override {
    Append(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

  // A stream that is not ours (Server::Serve) ended: the owner frees the session.
  void EndEmbedded() {
    *link_ = nullptr;
    if (on_abort_) {
      std::function<void()> abort = std::move(on_abort_);
      abort();
    }
    if (events_) {
      events_->connection = nullptr;
      events_.reset();
    }
    delete this;
  }

  // The event stream's side.
  void SendEvent(std::string_view text) { stream_->Write(text); }
  void EndEvents() {
    events_.reset();
    stream_->Finish();
  }

 private:
  enum class State : uint8_t {
    kHead,       // reading a request head
    kHandling,   // a handler ran and has not answered yet (or waits for the body)
    kDone,       // answered with Connection: close, or failed; waiting for the stream's end
    kMoving,     // detaching for another shard
    kStreaming,  // server-sent events
  };

  ~Connection() override {
    *link_ = nullptr;
    server_.shard().timers().Cancel(timer_);
  }

  void ArmDeadline() {
    if (server_.options().request_timeout_ms > 0) {
      server_.shard().timers().Arm(timer_, server_.shard().now_ms(),
                                   server_.options().request_timeout_ms);
    }
  }
  void OnDeadline() {
    if (server_.options().on_timeout) {
      server_.options().on_timeout();
    }
    stream_->Close(ETIMEDOUT);
  }
  void Append(std::string_view bytes);
  void ParseHead();
  // A new request is in hand (complete, or refused on its head): it is owed an answer.
  void BeginRequest();
  void Dispatch();
  void BodyProgress();
  // Answers that end the connection whatever the client asked (framing is in doubt).
  void Fail(int status, std::string_view message) {
    keep_alive_ = false;
    Error(status, message);
  }
  void NextRequest();

  Server& server_;
  // Bytes read and not yet consumed. Once a head is complete it moves to head_text_, so the
  // views of head_ (and path_, query_, params_) stay valid however buffer_ grows meanwhile.
  std::string buffer_;
  std::string head_text_;  // the request in hand's head
  std::string body_;       // and its body, once read: a later answer may still be using it
  State state_ = State::kHead;
  bool owned_ = true;
  bool keep_alive_ = false;    // this request's answer may keep the connection
  bool body_pending_ = false;  // a body was announced and nobody read it
  size_t body_limit_ = 0;      // while reading a body
  size_t body_length_ = 0;     // Content-Length of the body being read
  size_t consumed_ = 0;        // body bytes of the request in hand at the front of buffer_
  BodyHandler body_then_;      // set while reading a body
  std::function<void()> on_abort_;
  std::shared_ptr<Exchange*> link_ = std::make_shared<Exchange*>(this);
  std::shared_ptr<EventLink> events_;
  runtime::Timer timer_;
};

class Events final : public EventStream {
 public:
  explicit Events(std::shared_ptr<EventLink> link) : link_(std::move(link)) {}
  ~Events() override { Close(); }

  bool alive() const override { return link_->connection != nullptr; }
  size_t queued_bytes() const override;
  void Send(std::string_view data, std::string_view event) override;
  void KeepAlive() override;
  void Close() override;
  void set_on_closed(std::function<void()> fn) override { link_->on_closed = std::move(fn); }

 private:
  std::shared_ptr<EventLink> link_;
};

void Connection::Append(std::string_view bytes) {
  switch (state_) {
    case State::kHead:
      buffer_.append(bytes);
      ParseHead();
      return;
    case State::kHandling:
    case State::kMoving:
      // The body, a pipelined request, or bytes that move with the connection; bounded.
      buffer_.append(bytes);
      if (body_then_) {
        BodyProgress();
      } else if (state_ == State::kHandling && buffer_.size() > consumed_ + kMaxPipelined &&
                 !stream_->read_paused()) {
        stream_->PauseRead();
      }
      return;
    case State::kDone:
    case State::kStreaming:
      return;  // nothing more is read from the client
  }
}

void Connection::ParseHead() {
  switch (proto::ParseRequestHead(buffer_, &head_)) {
    case proto::HeadResult::kNeedMore:
      return;
    case proto::HeadResult::kTooLarge:
    case proto::HeadResult::kTooManyHeaders:
      BeginRequest();
      Fail(431, "request head too large");
      return;
    case proto::HeadResult::kMalformed:
      BeginRequest();
      Fail(400, "malformed request");
      return;
    case proto::HeadResult::kComplete:
      Dispatch();
      return;
  }
}

void Connection::BeginRequest() {
  state_ = State::kHandling;
  ++serial_;
  answered_ = false;
}

void Connection::Dispatch() {
  BeginRequest();
  head_text_.assign(buffer_, 0, head_.head_bytes);
  buffer_.erase(0, head_.head_bytes);
  proto::ParseRequestHead(head_text_, &head_);  // the same head, now viewing head_text_
  consumed_ = 0;
  body_.clear();
  const size_t q = head_.target.find('?');
  path_ = head_.target.substr(0, q);
  query_ = q == std::string_view::npos ? std::string_view() : head_.target.substr(q + 1);
  const proto::HeaderList& h = head_.headers;
  switch (head_.protocol) {
    case proto::Protocol::kHttp11:
      keep_alive_ =
          !(h.Find("Connection") && proto::HeaderHasToken(*h.Find("Connection"), "close"));
      break;
    case proto::Protocol::kHttp10:
      keep_alive_ =
          h.Find("Connection") && proto::HeaderHasToken(*h.Find("Connection"), "keep-alive");
      break;
    case proto::Protocol::kRtsp10:
      Fail(400, "not an HTTP request");
      return;
  }
  keep_alive_ = keep_alive_ && server_.options().keep_alive;
  body_pending_ = h.Find("Transfer-Encoding").has_value() ||
                  (h.Find("Content-Length") && h.Find("Content-Length") != "0");

  RouteMatch match = server_.router().Find(head_.method, path_);
  if (!match.public_path) {
    const std::string_view token =
        server_.options().bearer_token ? server_.options().bearer_token() : std::string_view();
    if (!token.empty() && !proto::BearerTokenMatches(h, token)) {
      if (server_.options().on_unauthorized) {
        server_.options().on_unauthorized();
      }
      Error(401, "bearer token required");
      return;
    }
  }
  if (match.route == nullptr) {
    if (match.allow.empty()) {
      Error(404, "not found");
    } else {
      const proto::HeaderField allow[] = {{"Allow", match.allow}};
      Error(405, "method not allowed; allowed: " + match.allow, allow);
    }
    return;
  }
  params_ = std::move(match.params);
  // The handler may answer, move the connection or take its stream; nothing here touches the
  // connection after it returns.
  match.route->handler(*this);
}

void Connection::ReadBody(size_t limit, BodyHandler then) {
  const proto::HeaderList& h = head_.headers;
  if (h.Find("Transfer-Encoding") || h.Count("Content-Length") != 1) {
    Fail(411, "one Content-Length required, no chunked bodies");
    return;
  }
  const std::optional<uint64_t> length = proto::ParseContentLength(*h.Find("Content-Length"));
  if (!length) {
    Fail(400, "bad Content-Length");
    return;
  }
  if (*length > limit) {
    // Answered on the head alone: the body is never read.
    Fail(413, "body over " + std::to_string(limit) + " bytes");
    return;
  }
  body_pending_ = false;
  body_limit_ = limit;
  body_length_ = static_cast<size_t>(*length);
  body_then_ = std::move(then);
  BodyProgress();
}

void Connection::BodyProgress() {
  if (buffer_.size() < body_length_) {
    return;
  }
  consumed_ = body_length_;
  body_.assign(buffer_, 0, body_length_);
  BodyHandler then = std::move(body_then_);
  body_then_ = nullptr;
  then(*this, body_);
}

void Connection::Respond(int status, std::string_view content_type, std::string_view body,
                         std::span<const proto::HeaderField> extra) {
  if (answered_ || (state_ != State::kHandling)) {
    return;
  }
  answered_ = true;
  on_abort_ = nullptr;
  body_then_ = nullptr;
  const bool keep = keep_alive_ && !body_pending_;
  if (server_.options().on_answer) {
    server_.options().on_answer(status);
  }
  // Head and body written apart: a large body (a snapshot) is copied once, into the send queue.
  // A HEAD request gets the head a GET would have had, without the body.
  stream_->Write(proto::FormatHttpAnswerHead({.status = status,
                                              .content_type = content_type,
                                              .content_length = body.size(),
                                              .keep_alive = keep,
                                              .extra_fields = extra}));
  if (head_.method != "HEAD") {
    stream_->Write(body);
  }
  if (!keep) {
    state_ = State::kDone;
    server_.shard().timers().Cancel(timer_);
    stream_->Finish();
    return;
  }
  // The next request is read from the loop, never inside the handler that answered.
  state_ = State::kHead;
  buffer_.erase(0, consumed_);
  consumed_ = 0;
  head_ = proto::RequestHead();
  params_.clear();
  ArmDeadline();
  if (stream_->read_paused()) {
    stream_->ResumeRead();
  }
  if (!buffer_.empty()) {
    std::weak_ptr<Exchange*> link = link_;
    server_.shard().Defer([this, link] {
      if (auto l = link.lock(); l && *l != nullptr) {
        NextRequest();
      }
    });
  }
}

void Connection::NextRequest() {
  if (state_ == State::kHead && !buffer_.empty()) {
    ParseHead();
  }
}

void Connection::MoveConnection(HandOff hand) {
  if (state_ != State::kHandling || answered_) {
    return;
  }
  if (!owned_) {
    Fail(500, "this connection cannot move");
    return;
  }
  state_ = State::kMoving;
  server_.shard().timers().Cancel(timer_);
  auto done = [this, hand = std::move(hand)](runtime::Stream* s) mutable {
    std::string bytes = head_text_ + buffer_;
    buffer_.clear();
    if (std::move(hand)(s, this, std::move(bytes))) {
      delete this;  // the stream and its bytes belong to another shard's server now
      return;
    }
    state_ = State::kHandling;
    Fail(503, "the server is too busy to answer; retry");
  };
  if (!stream_->Detach(std::move(done))) {
    state_ = State::kHandling;
    Fail(503, "the server is too busy to answer; retry");
  }
}

Exchange::Taken Connection::TakeStream() {
  if (!owned_) {
    return {nullptr, {}};  // the stream is its owner's to give
  }
  Taken taken{stream_, buffer_};
  answered_ = true;
  state_ = State::kDone;
  stream_->set_handler(nullptr);
  *link_ = nullptr;
  server_.shard().timers().Cancel(timer_);
  // Not inside the handler's call: it may still be on the stack.
  server_.shard().Defer([this] { delete this; });
  return taken;
}

std::unique_ptr<EventStream> Connection::OpenEventStream() {
  if (state_ != State::kHandling || answered_) {
    return nullptr;
  }
  answered_ = true;
  on_abort_ = nullptr;
  if (server_.options().on_answer) {
    server_.options().on_answer(200);
  }
  static const proto::HeaderField kNoCache[] = {{"Cache-Control", "no-store"}};
  stream_->Write(proto::FormatHttpAnswerHead({.status = 200,
                                              .content_type = "text/event-stream",
                                              .content_length = std::nullopt,
                                              .keep_alive = false,
                                              .extra_fields = kNoCache}));
  state_ = State::kStreaming;
  server_.shard().timers().Cancel(timer_);
  events_ = std::make_shared<EventLink>();
  events_->connection = this;
  return std::make_unique<Events>(events_);
}

void Connection::OnStreamEof(runtime::Stream& stream) {
  switch (state_) {
    case State::kHead:
      // Between requests, or a client that gave up on its head. A stream that is not ours
      // ends gracefully, as its owner would end it.
      if (owned_) {
        stream.Close(0);
      } else {
        stream.Finish();
      }
      return;
    case State::kHandling:
      if (body_then_ || !answered_) {
        stream.Close(0);  // nobody is left to read the answer
      }
      return;
    case State::kStreaming:
      stream.Finish();  // the client left; OnStreamClosed tells the pusher
      return;
    case State::kDone:
    case State::kMoving:
      return;
  }
}

void Connection::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  *link_ = nullptr;
  if (on_abort_) {
    std::function<void()> abort = std::move(on_abort_);
    abort();
  }
  if (events_) {
    std::shared_ptr<EventLink> events = std::move(events_);
    events->connection = nullptr;
    if (events->on_closed) {
      events->on_closed();
    }
  }
  if (server_.options().on_closed) {
    server_.options().on_closed();
  }
  delete this;
}

size_t Events::queued_bytes() const {
  return link_->connection != nullptr ? link_->connection->stream().queued_bytes() : 0;
}

void Events::Send(std::string_view data, std::string_view event) {
  if (link_->connection == nullptr) {
    return;
  }
  std::string out;
  if (!event.empty()) {
    out.append("event: ").append(event).append("\n");
  }
  // One "data:" line per line; a CR or LF inside would otherwise end the event early.
  for (;;) {
    const size_t end = data.find_first_of("\r\n");
    out.append("data: ").append(data.substr(0, end)).append("\n");
    if (end == std::string_view::npos) {
      break;
    }
    data.remove_prefix(end + (data.substr(end).starts_with("\r\n") ? 2 : 1));
  }
  out.append("\n");
  link_->connection->SendEvent(out);
}

void Events::KeepAlive() {
  if (link_->connection != nullptr) {
    link_->connection->SendEvent(":\n\n");
  }
}

void Events::Close() {
  if (link_->connection != nullptr) {
    Connection* c = link_->connection;
    link_->connection = nullptr;
    link_->on_closed = nullptr;
    c->EndEvents();
  }
}

class Embedded final : public EmbeddedSession {
 public:
  explicit Embedded(Connection* c) : c_(c) {}
  ~Embedded() override { c_->EndEmbedded(); }
  void OnBytes(std::span<const uint8_t> bytes) override { c_->OnStreamData(c_->stream(), bytes); }
  void OnEof() override { c_->OnStreamEof(c_->stream()); }

 private:
  Connection* c_;
};

}  // namespace

std::unique_ptr<EmbeddedSession> Server::Serve(runtime::Stream& stream) {
  auto* c = new Connection(*this);
  c->Begin(&stream, {}, /*owned=*/false);
  return std::make_unique<Embedded>(c);
}

void Server::Accept(int fd, SSL_CTX* tls) {
  auto* c = new Connection(*this);
  runtime::Stream* stream = runtime::Stream::Create(shard_, fd, tls, c);
  c->Begin(stream, {});
  stream->Start();
}

void Server::Adopt(runtime::Stream* stream, std::string bytes) {
  auto* c = new Connection(*this);
  stream->Attach(shard_, c);
  c->Begin(stream, bytes);
}

}  // namespace camtunnel::http
