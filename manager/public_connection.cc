// See public_connection.h.
#include "manager/public_connection.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "manager/activation.h"
#include "manager/agent_link.h"
#include "manager/http_answer.h"
#include "manager/manager_server.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {

void PublicConnection::Start(ManagerServer& server, int fd, bool plain) {
  ++server.counters().connections_accepted;
  if (!server.TryAdmitUnauthenticated()) {
    // Closing at once reads as "busy, back off" to an agent (PROTOCOL.md section 4).
    ++server.counters().connections_refused_busy;
    close(fd);
    return;
  }
  auto* c = new PublicConnection(server, plain);
  c->stream_ =
      runtime::Stream::Create(server.shard(), fd, plain ? nullptr : server.tls_context(), c);
  c->deadline_.set_callback([c] {
    ++c->server_.counters().link_timeouts;
    c->stream_->Close(ETIMEDOUT);
  });
  server.shard().timers().Arm(c->deadline_, server.shard().now_ms(),
                              server.config().handshake_timeout_ms);
  c->stream_->Start();
}

void PublicConnection::Respond(int status, std::string_view body, int64_t retry_after_ms) {
  answered_ = true;
  if (status >= 400) {
    ++server_.counters().bad_requests;
  }
  stream_->Write(HttpAnswer(status, "application/json", body, retry_after_ms));
  stream_->Finish();
}

void PublicConnection::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (answered_) {
    return;
  }
  buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (head_bytes_ == 0) {
    proto::RequestHead head;
    switch (proto::ParseRequestHead(buffer_, &head)) {
      case proto::HeadResult::kNeedMore:
        return;
      case proto::HeadResult::kTooLarge:
      case proto::HeadResult::kTooManyHeaders:
        Respond(431, R"({"error":"request head too large"})");
        return;
      case proto::HeadResult::kMalformed:
        Respond(400, R"({"error":"malformed request"})");
        return;
      case proto::HeadResult::kComplete:
        Route(head);
        return;
    }
  }
  if (buffer_.size() - head_bytes_ > body_bytes_) {
    Respond(400, R"({"error":"bytes after the request body"})");
    return;
  }
  if (buffer_.size() - head_bytes_ == body_bytes_) {
    Activate();
  }
}

void PublicConnection::Route(const proto::RequestHead& head) {
  const ManagerRole role = server_.config().role;
  if (head.target == proto::kManagerPath) {
    if (role == ManagerRole::kActivation) {
      Respond(404, R"({"error":"an activation server: manager links go to the managing server"})");
      return;
    }
    Upgrade(head);
    return;
  }
  if (head.target != "/api/v1/activate") {
    Respond(404, R"({"error":"not found"})");
    return;
  }
  if (role == ManagerRole::kManaging) {
    Respond(404, R"({"error":"a managing server: activation is served by the activation server"})");
    return;
  }
  if (plain_) {
    // The answer carries the agent secret and the request the factory secret: never in clear.
    // Refused on the head, so the body (if a misconfigured client sends one) is never parsed.
    ++server_.counters().plain_activations_refused;
    Respond(403, R"({"error":"activation is HTTPS only"})");
    return;
  }
  if (head.method != "POST") {
    Respond(405, R"({"error":"POST only"})");
    return;
  }
  auto length_text = head.headers.Find("Content-Length");
  std::optional<uint64_t> length;
  if (length_text && head.headers.Count("Content-Length") == 1) {
    length = proto::ParseContentLength(*length_text);
  }
  if (!length || head.headers.Find("Transfer-Encoding")) {
    Respond(400, R"({"error":"Content-Length required, no chunked bodies"})");
    return;
  }
  if (*length > kMaxActivationBody) {
    Respond(413, R"({"error":"body over 4096 bytes"})");
    return;
  }
  head_bytes_ = head.head_bytes;
  body_bytes_ = *length;
  OnStreamData(*stream_, {});
}

void PublicConnection::Activate() {
  const std::string_view body = std::string_view(buffer_).substr(head_bytes_);
  const std::string source(SourceAddress(stream_->peer_text()));
  answered_ = true;
  // With split roles the answer waits for the managing server; this connection may be gone by
  // then (its deadline, or the camera hung up).
  server_.activation().Handle(
      body, source, ManagerServer::WallMs(), [this, alive = alive_](const ActivationAnswer& a) {
        if (!*alive) {
          return;
        }
        if (a.status >= 400) {
          ++server_.counters().bad_requests;
        }
        stream_->Write(HttpAnswer(a.status, "application/json", a.body + "\n", a.retry_after_ms));
        stream_->Finish();
      });
}

void PublicConnection::Upgrade(const proto::RequestHead& head) {
  auto upgrade = proto::ParseManagerRequest(head);
  if (!upgrade) {
    Respond(400, R"({"error":"not a valid camtunnel/1 manager upgrade"})");
    return;
  }
  auto agent = server_.store().FindAgent(upgrade->agent_id);
  if (!agent.ok()) {
    Respond(503, R"({"error":"state database unavailable"})", 5000);
    return;
  }
  if (!agent->has_value() || (*agent)->state != AgentState::kActive) {
    // Without the agent's secret the manager cannot prove itself: nothing to upgrade to.
    ++server_.counters().link_unknown_agent;
    Respond(401, R"({"error":"unknown or deactivated agent"})");
    return;
  }
  answered_ = true;
  server_.shard().timers().Cancel(deadline_);
  const std::string leftover(std::string_view(buffer_).substr(head.head_bytes));
  runtime::Stream* stream = stream_;
  ManagerServer& server = server_;
  const AgentRecord record = **agent;
  // The link takes the stream (and the unauthenticated slot); this object is done.
  delete this;
  AgentLink::Start(
      server, stream, *upgrade, record,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(leftover.data()), leftover.size()));
}

void PublicConnection::OnStreamEof(runtime::Stream& /*stream*/) {
  if (!answered_) {
    stream_->Close(0);
  }
}

void PublicConnection::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  server_.ReleaseUnauthenticated();
  delete this;
}

}  // namespace camtunnel::manager
