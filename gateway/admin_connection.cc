#include "gateway/admin_connection.h"

#include <cctype>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "gateway/camera_probe.h"
#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "proto/crypto.h"
#include "proto/encoding.h"

namespace camtunnel::gateway {
namespace {

// Long enough for a probe: open deadline plus the camera's answer.
constexpr uint64_t kAdminTimeoutMs = 15000;

std::string_view Phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Service Unavailable";
  }
}

nlohmann::json AgentJson(std::string_view id, const ControlSession& s) {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& e : s.services()) {
    services.push_back({{"name", e.name}, {"port", e.port}});
  }
  return {{"id", std::string(id)},
          {"remote", s.remote()},
          {"version", s.version()},
          {"connected_since_ms", s.connected_wall_ms()},
          {"heartbeat_rtt_us", s.last_rtt_us()},
          {"last_status", s.last_status()},
          {"services", services}};
}

}  // namespace

void AdminConnection::Start(GatewayShard& gw, int fd) {
  auto* a = new AdminConnection(gw);
  a->stream_ = runtime::Stream::Create(gw.shard(), fd, nullptr, a);
  a->timer_.set_callback([a] { a->stream_->Close(ETIMEDOUT); });
  gw.shard().timers().Arm(a->timer_, gw.shard().now_ms(), kAdminTimeoutMs);
  a->stream_->Start();
}

void AdminConnection::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (answered_) {
    return;
  }
  head_.Append(bytes);
  proto::RequestHead head;
  switch (head_.Parse(&head)) {
    case proto::HeadResult::kNeedMore:
      return;
    case proto::HeadResult::kComplete:
      Route(head);
      return;
    case proto::HeadResult::kTooLarge:
    case proto::HeadResult::kTooManyHeaders:
      Respond(431, "text/plain", "request head too large\n");
      return;
    case proto::HeadResult::kMalformed:
      Respond(400, "text/plain", "malformed request\n");
      return;
  }
}

bool AdminConnection::Authorized(const proto::RequestHead& head) const {
  const std::string& token = gw_.config().admin_token;
  if (token.empty()) {
    return true;  // loopback-only deployment (enforced at start-up)
  }
  auto auth = head.headers.Find("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!auth || !auth->starts_with(kBearer)) {
    return false;
  }
  return proto::ConstantTimeEqual(proto::AsBytes(auth->substr(kBearer.size())),
                                  proto::AsBytes(token));
}

void AdminConnection::Route(const proto::RequestHead& head) {
  const size_t q = head.target.find('?');
  std::string_view path = head.target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? "" : head.target.substr(q + 1);
  constexpr std::string_view kAgents = "/api/v1/agents/";
  constexpr std::string_view kProbe = "/probe";
  if (path != "/healthz" && path != "/readyz" && !Authorized(head)) {
    gw_.metrics().admin_unauthorized.Add();
    Respond(401, "text/plain", "bearer token required\n");
    return;
  }
  if (head.method == "POST" && path.starts_with(kAgents) && path.ends_with(kProbe) &&
      path.size() > kAgents.size() + kProbe.size()) {
    Probe(path.substr(kAgents.size(), path.size() - kAgents.size() - kProbe.size()), query);
  } else if (path.starts_with(kAgents) && path.size() > kAgents.size() &&
             path.substr(kAgents.size()).find('/') == std::string_view::npos) {
    Agent(head.method, path.substr(kAgents.size()));
  } else if (head.method != "GET") {
    Respond(405, "text/plain", "only GET is served here for now\n");
  } else if (path == "/metrics") {
    Respond(200, "text/plain; version=0.0.4; charset=utf-8", gw_.RenderMetricsText());
  } else if (path == "/healthz") {
    Respond(200, "text/plain", "ok\n");
  } else if (path == "/readyz") {
    gw_.ready() ? Respond(200, "text/plain", "ready\n") : Respond(503, "text/plain", "not ready\n");
  } else if (path == "/api/v1/agents") {
    nlohmann::json list = nlohmann::json::array();
    gw_.registry().ForEachSession(
        [&](std::string_view id, const ControlSession* s) { list.push_back(AgentJson(id, *s)); });
    Respond(200, "application/json", nlohmann::json{{"agents", list}}.dump() + "\n");
  } else {
    Respond(404, "text/plain", "not found\n");
  }
}

// GET shows one agent; DELETE kicks it (GOAWAY, then close); the agent reconnects after its
// backoff unless its key was revoked meanwhile.
void AdminConnection::Agent(std::string_view method, std::string_view agent_id) {
  ControlSession* s = gw_.registry().Find(agent_id);
  if (s == nullptr) {
    Respond(404, "application/json",
            R"({"error":"agent not connected"})"
            "\n");
  } else if (method == "GET") {
    Respond(200, "application/json", AgentJson(agent_id, *s).dump() + "\n");
  } else if (method == "DELETE") {
    s->GoAway("kicked by the operator", 0);
    Respond(200, "application/json",
            R"({"kicked":true})"
            "\n");
  } else {
    Respond(405, "text/plain", "GET or DELETE\n");
  }
}

// Query: service=<name> (default rtsp) and path=<absolute path> (default /). Values are taken
// literally and restricted to a safe alphabet, since they end up in a request line.
void AdminConnection::Probe(std::string_view agent_id, std::string_view query) {
  if (!proto::IsCanonicalAgentId(agent_id)) {
    Respond(400, "text/plain", "agent id is not canonical\n");
    return;
  }
  std::string service = "rtsp";
  std::string path = "/";
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    for (char c : value) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '.' && c != '_' &&
          c != '-') {
        Respond(400, "text/plain", "query values may hold only [A-Za-z0-9/._-]\n");
        return;
      }
    }
    if (key == "service") {
      service = std::string(value);
    } else if (key == "path" && value.starts_with("/")) {
      path = std::string(value);
    } else {
      Respond(400, "text/plain", "query takes service=<name> and path=/<path>\n");
      return;
    }
  }
  answered_ = true;  // the probe answers
  probe_ = CameraProbe::Start(gw_, std::string(agent_id), service, path,
                              [this](int status, std::string body) {
                                probe_ = nullptr;
                                answered_ = false;
                                Respond(status, "application/json", body);
                              });
}

void AdminConnection::Respond(int status, std::string_view content_type, std::string_view body) {
  answered_ = true;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(Phrase(status)) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  out.append(body);
  stream_->Write(out);
  stream_->Finish();
}

void AdminConnection::OnStreamEof(runtime::Stream& stream) {
  if (!answered_) {
    stream.Close(0);
  }
}

void AdminConnection::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) {
  gw_.shard().timers().Cancel(timer_);
  if (probe_ != nullptr) {
    probe_->Cancel();
  }
  delete this;
}

}  // namespace camtunnel::gateway
