#include "gateway/admin_connection.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "gateway/camera_probe.h"
#include "gateway/control_session.h"
#include "gateway/gateway_shard.h"
#include "gateway/log.h"
#include "gateway/relocations.h"
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
    case 202:
      return "Accepted";
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

// Agents listed per page unless ?limit= says otherwise, and the most one page may hold: the list
// is built and sorted on the shard's loop, so a page stays small.
constexpr size_t kDefaultPage = 100;
constexpr size_t kMaxPage = 1000;

std::string_view StateOf(const ControlSession& s) { return s.closing() ? "closing" : "connected"; }

nlohmann::json AgentJson(GatewayShard& gw, std::string_view id, const ControlSession& s) {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& e : s.services()) {
    services.push_back({{"name", e.name}, {"port", e.port}});
  }
  const AgentStats* stats = gw.registry().Stats(id);
  const AgentStats none;
  const AgentStats& st = stats != nullptr ? *stats : none;
  return {{"id", std::string(id)},
          {"state", std::string(StateOf(s))},
          {"home_shard", gw.shard().id()},
          {"remote", s.remote()},
          {"version", s.version()},
          {"connected_since_ms", s.connected_wall_ms()},
          {"heartbeat_rtt_us", s.last_rtt_us()},
          {"last_status", s.last_status()},
          {"services", services},
          {"open_tunnels", st.open_tunnels},
          {"tunnels_total", st.tunnels},
          {"bytes_to_camera", st.bytes_to_camera},
          {"bytes_to_client", st.bytes_to_client},
          {"reconnects", st.sessions > 0 ? st.sessions - 1 : 0}};
}

// "a=1&b=2" -> calls f(key, value) per pair; stops at the first f that returns false.
template <typename F>
bool ForEachQueryPair(std::string_view query, F f) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (!f(pair.substr(0, eq), eq == std::string_view::npos ? "" : pair.substr(eq + 1))) {
      return false;
    }
  }
  return true;
}

// The relocation table (gateway/relocations.h). GET /api/v1/relocations lists it (first 1000 by
// id); PUT /api/v1/relocations/{id} with {"frontend":"rtsp://host:port"} records where the
// manager moved an agent; DELETE /api/v1/relocations/{id} forgets it. nullopt: the PUT body has
// not fully arrived yet (the caller waits for more bytes and routes again).
struct RelocationAnswer {
  int status;
  nlohmann::json body;
};
constexpr size_t kMaxRelocationBody = 1024;

std::optional<RelocationAnswer> RelocationRoute(GatewayShard& gw, const proto::RequestHead& head,
                                                std::string_view agent_id,
                                                std::string_view after_head) {
  using nlohmann::json;
  if (agent_id.empty()) {
    if (head.method != "GET") {
      return RelocationAnswer{405, {{"error", "GET the list; PUT or DELETE /{agent id}"}}};
    }
    std::vector<std::pair<std::string, json>> rows;
    const uint64_t now = gw.shard().now_ms();
    gw.relocations().ForEach([&](std::string_view id, std::string_view to, uint64_t expires) {
      rows.emplace_back(std::string(id),
                        json{{"agent", std::string(id)},
                             {"frontend", std::string(to)},
                             {"expires_in_ms", expires > now ? expires - now : 0}});
    });
    const size_t n = std::min<size_t>(rows.size(), kMaxPage);
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    json list = json::array();
    for (size_t i = 0; i < n; ++i) {
      list.push_back(std::move(rows[i].second));
    }
    return RelocationAnswer{200, {{"relocations", list}, {"total", rows.size()}}};
  }
  if (!proto::IsCanonicalAgentId(agent_id)) {
    return RelocationAnswer{400, {{"error", "not a canonical agent id"}}};
  }
  if (head.method == "DELETE") {
    const bool was = gw.relocations().Erase(agent_id);
    return RelocationAnswer{was ? 200 : 404, {{"agent", agent_id}, {"was_relocated", was}}};
  }
  if (head.method != "PUT") {
    return RelocationAnswer{405, {{"error", "PUT or DELETE"}}};
  }
  auto length_text = head.headers.Find("Content-Length");
  std::optional<uint64_t> length;
  if (length_text && head.headers.Count("Content-Length") == 1) {
    length = proto::ParseContentLength(*length_text);
  }
  if (!length || *length > kMaxRelocationBody || after_head.size() > *length) {
    return RelocationAnswer{400, {{"error", "need one Content-Length, a body of 1..1024 bytes"}}};
  }
  if (after_head.size() < *length) {
    return std::nullopt;
  }
  const json doc = json::parse(after_head, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("frontend") || !doc["frontend"].is_string()) {
    return RelocationAnswer{400, {{"error", R"(body must be {"frontend":"rtsp://host:port"})"}}};
  }
  const std::string& frontend = doc["frontend"].get_ref<const std::string&>();
  const AgentStats* stats = gw.registry().Stats(agent_id);
  switch (gw.relocations().Put(agent_id, frontend, stats != nullptr ? stats->sessions : 0,
                               gw.shard().now_ms())) {
    case Relocations::PutResult::kOk:
      LogEvent(LogLevel::kInfo, "agent_relocated", {Kv("agent", agent_id), Kv("to", frontend)});
      return RelocationAnswer{200, {{"agent", agent_id}, {"frontend", frontend}}};
    case Relocations::PutResult::kBadFrontend:
      return RelocationAnswer{400, {{"error", "frontend must be rtsp://host:port or http://..."}}};
    case Relocations::PutResult::kFull:
      break;
  }
  return RelocationAnswer{503, {{"error", "relocation table full"}}};
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
  constexpr std::string_view kDenylist = "/api/v1/denylist";
  constexpr std::string_view kRelocations = "/api/v1/relocations";
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
  } else if (path == "/api/v1/drain") {
    Drain(head.method);
  } else if (path == kDenylist || (path.starts_with(kDenylist) && path[kDenylist.size()] == '/')) {
    Denylist(head.method, path.substr(std::min(path.size(), kDenylist.size() + 1)));
  } else if (path == kRelocations ||
             (path.starts_with(kRelocations) && path[kRelocations.size()] == '/')) {
    if (auto a =
            RelocationRoute(gw_, head, path.substr(std::min(path.size(), kRelocations.size() + 1)),
                            head_.After(head))) {
      Respond(a->status, "application/json", a->body.dump() + "\n");
    }
  } else if (head.method != "GET") {
    Respond(405, "text/plain", "only GET is served here for now\n");
  } else if (path == "/metrics") {
    Respond(200, "text/plain; version=0.0.4; charset=utf-8", gw_.RenderMetricsText());
  } else if (path == "/healthz") {
    Respond(200, "text/plain", "ok\n");
  } else if (path == "/readyz") {
    if (gw_.ready()) {
      Respond(200, "text/plain", "ready\n");
    } else {
      Respond(503, "text/plain", gw_.draining() ? "draining\n" : "not ready\n");
    }
  } else if (path == "/api/v1/agents") {
    ListAgents(query);
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
    Respond(200, "application/json", AgentJson(gw_, agent_id, *s).dump() + "\n");
  } else if (method == "DELETE") {
    s->GoAway("kicked by the operator", 0);
    Respond(200, "application/json",
            R"({"kicked":true})"
            "\n");
  } else {
    Respond(405, "text/plain", "GET or DELETE\n");
  }
}

// Query: limit=<1..1000> (default 100), cursor=<agent id> (the previous page's next_cursor:
// agents after it in id order), state=connected|closing. Ordered by id, so pages are stable
// while agents come and go: an agent is never listed twice, and one that connects meanwhile
// shows up if its id sorts after the cursor.
void AdminConnection::ListAgents(std::string_view query) {
  size_t limit = kDefaultPage;
  std::string cursor;
  std::string state;
  std::string error;
  ForEachQueryPair(query, [&](std::string_view key, std::string_view value) {
    if (key == "limit") {
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &limit) || limit == 0 ||
          limit > kMaxPage) {
        error = "limit must be 1..1000";
      }
    } else if (key == "cursor") {
      if (!value.empty() && !proto::IsCanonicalAgentId(value)) {
        error = "cursor must be an agent id (the previous page's next_cursor)";
      }
      cursor = std::string(value);
    } else if (key == "state") {
      if (value != "connected" && value != "closing") {
        error = "state must be connected or closing";
      }
      state = std::string(value);
    } else {
      error = "query takes limit, cursor and state";
    }
    return error.empty();
  });
  if (!error.empty()) {
    Respond(400, "application/json", nlohmann::json{{"error", error}}.dump() + "\n");
    return;
  }
  std::vector<std::pair<std::string_view, const ControlSession*>> match;
  size_t total = 0;
  gw_.registry().ForEachSession([&](std::string_view id, const ControlSession* s) {
    if (!state.empty() && StateOf(*s) != state) {
      return;
    }
    ++total;
    if (cursor.empty() || id > std::string_view(cursor)) {
      match.emplace_back(id, s);
    }
  });
  // Only the page's first `limit` ids need ordering.
  const size_t n = std::min(limit, match.size());
  std::partial_sort(match.begin(), match.begin() + static_cast<std::ptrdiff_t>(n), match.end());
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < n; ++i) {
    list.push_back(AgentJson(gw_, match[i].first, *match[i].second));
  }
  nlohmann::json page = {{"agents", list}, {"total", total}};
  page["next_cursor"] =
      match.size() > n ? nlohmann::json(std::string(match[n - 1].first)) : nlohmann::json();
  Respond(200, "application/json", page.dump() + "\n");
}

// The revocation denylist. GET /api/v1/denylist lists it; PUT /api/v1/denylist/{id} revokes
// an agent (its live session is ended at once and every later connection with its key gets
// 401); DELETE /api/v1/denylist/{id} takes it off again (a reactivated camera).
void AdminConnection::Denylist(std::string_view method, std::string_view agent_id) {
  if (agent_id.empty()) {
    if (method != "GET") {
      Respond(405, "text/plain", "GET the list; PUT or DELETE /api/v1/denylist/{agent id}\n");
      return;
    }
    std::vector<std::string> ids(gw_.denylist().begin(), gw_.denylist().end());
    std::sort(ids.begin(), ids.end());
    Respond(200, "application/json", nlohmann::json{{"agents", ids}}.dump() + "\n");
    return;
  }
  if (!proto::IsCanonicalAgentId(agent_id)) {
    Respond(400, "application/json",
            nlohmann::json{{"error", "not a canonical agent id"}}.dump() + "\n");
    return;
  }
  if (method == "PUT") {
    gw_.Deny(std::string(agent_id));
    bool kicked = false;
    if (ControlSession* s = gw_.registry().Find(agent_id); s != nullptr) {
      s->GoAway("revoked", 0);
      kicked = true;
    }
    LogEvent(LogLevel::kInfo, "agent_revoked", {Kv("agent", agent_id), Kv("kicked", kicked)});
    Respond(200, "application/json",
            nlohmann::json{{"denied", agent_id}, {"kicked", kicked}}.dump() + "\n");
  } else if (method == "DELETE") {
    const bool was = gw_.Allow(agent_id);
    LogEvent(LogLevel::kInfo, "agent_unrevoked", {Kv("agent", agent_id)});
    Respond(was ? 200 : 404, "application/json",
            nlohmann::json{{"allowed", agent_id}, {"was_denied", was}}.dump() + "\n");
  } else {
    Respond(405, "text/plain", "PUT or DELETE\n");
  }
}

// POST starts a drain and keeps the process up, not ready (a SIGTERM later still exits once
// drained); GET says how far it is.
void AdminConnection::Drain(std::string_view method) {
  if (method == "POST") {
    gw_.Drain({});
  } else if (method != "GET") {
    Respond(405, "text/plain", "GET or POST\n");
    return;
  }
  const nlohmann::json body = {{"draining", gw_.draining()},
                               {"drained", gw_.drained()},
                               {"tunnels_open", gw_.metrics().tunnels_open.Get()},
                               {"agents", gw_.registry().online()}};
  Respond(method == "POST" ? 202 : 200, "application/json", body.dump() + "\n");
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
