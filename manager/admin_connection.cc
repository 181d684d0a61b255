// See admin_connection.h.
#include "manager/admin_connection.h"

#include <nlohmann/json.hpp>

#include "manager/agent_link.h"
#include "manager/claims.h"
#include "manager/handover_service.h"
#include "manager/http_answer.h"
#include "manager/manager_server.h"
#include "proto/crypto.h"
#include "proto/encoding.h"
#include "proto/handover.h"
#include "proto/identifiers.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

constexpr uint64_t kAdminTimeoutMs = 10000;
constexpr size_t kMaxListed = 1000;
constexpr size_t kMaxBody = 1024;  // admin bodies are one small JSON object

json AgentJson(const AgentRecord& r, AgentLink* link) {
  json j{{"id", r.agent_id},
         {"state", std::string(AgentStateName(r.state))},
         {"operator", r.operator_id},
         {"activated_at_ms", r.activated_at_ms},
         {"last_seen_ms", r.last_seen_ms},
         {"last_status", r.last_status},
         {"streamer", r.streamer_url},
         {"linked", link != nullptr}};
  if (link != nullptr) {
    j["remote"] = link->remote();
    j["version"] = link->version();
    j["transport"] = link->plain() ? "plain" : "tls";
    j["connected_since_ms"] = link->connected_wall_ms();
    j["last_status"] = link->last_status().empty() ? r.last_status : link->last_status();
    json list = json::array();
    for (const auto& s : link->assigned()) {
      list.push_back({{"url", s.url}, {"key_ref", proto::FormatKeyRef(s.key_ref)}});
    }
    j["assigned"] = list;
  }
  return j;
}

// The value of `name` in "a=1&b=2" (no percent-decoding: URLs here are plain ASCII).
std::string_view QueryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return pair.substr(eq + 1);
    }
  }
  return {};
}

}  // namespace

void AdminConnection::Start(ManagerServer& server, int fd) {
  auto* a = new AdminConnection(server);
  a->stream_ = runtime::Stream::Create(server.shard(), fd, nullptr, a);
  a->deadline_.set_callback([a] { a->stream_->Close(ETIMEDOUT); });
  server.shard().timers().Arm(a->deadline_, server.shard().now_ms(), kAdminTimeoutMs);
  a->stream_->Start();
}

void AdminConnection::Respond(int status, std::string_view body) {
  answered_ = true;
  stream_->Write(HttpAnswer(status, "application/json", body));
  stream_->Finish();
}

void AdminConnection::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (answered_) {
    return;
  }
  buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  proto::RequestHead head;
  switch (proto::ParseRequestHead(buffer_, &head)) {
    case proto::HeadResult::kNeedMore:
      return;
    case proto::HeadResult::kComplete:
      Route(head);
      return;
    case proto::HeadResult::kTooLarge:
    case proto::HeadResult::kTooManyHeaders:
      Respond(431, R"({"error":"request head too large"})");
      return;
    case proto::HeadResult::kMalformed:
      Respond(400, R"({"error":"malformed request"})");
      return;
  }
}

bool AdminConnection::Authorized(const proto::RequestHead& head) const {
  const std::string& token = server_.config().admin_token;
  if (token.empty()) {
    return true;  // loopback-only (enforced at start-up)
  }
  auto auth = head.headers.Find("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  return auth && auth->starts_with(kBearer) &&
         proto::ConstantTimeEqual(proto::AsBytes(auth->substr(kBearer.size())),
                                  proto::AsBytes(token));
}

void AdminConnection::Route(const proto::RequestHead& head) {
  const size_t q = head.target.find('?');
  const std::string_view path = head.target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : head.target.substr(q + 1);
  constexpr std::string_view kAgents = "/api/v1/agents/";
  constexpr std::string_view kLookup = "/api/v1/lookup/";
  constexpr std::string_view kClaims = "/api/v1/claims/";
  if (path == "/healthz") {
    Respond(200, R"({"ok":true})");
    return;
  }
  if (path == proto::kHandoverPath && server_.handover() != nullptr) {
    // Authenticated by its MAC (the hand-over key), not the bearer token: the activation server
    // holds only the hand-over key. Without one configured the path does not exist (404 below).
    if (head.method != "POST") {
      Respond(405, R"({"error":"POST only"})");
      return;
    }
    std::optional<std::string_view> body = BodyOf(head);
    if (!body) {
      return;  // answered, or waiting for the rest of the body
    }
    auto mac = head.headers.Find(proto::kHandoverMacHeader);
    const HandoverAnswer a =
        server_.handover()->Handle(mac ? *mac : std::string_view(), *body, ManagerServer::WallMs());
    Respond(a.status, a.body);
    return;
  }
  if (!Authorized(head)) {
    ++server_.counters().admin_unauthorized;
    Respond(401, R"({"error":"bearer token required"})");
    return;
  }
  if (path == "/metrics" && head.method == "GET") {
    answered_ = true;
    stream_->Write(HttpAnswer(200, "text/plain; version=0.0.4", server_.RenderMetrics()));
    stream_->Finish();
  } else if (path == "/api/v1/agents" && head.method == "GET") {
    ListAgents();
  } else if (path == "/api/v1/audit" && head.method == "GET") {
    ListAudit();
  } else if (path.starts_with(kLookup) && head.method == "GET") {
    Lookup(path.substr(kLookup.size()));
  } else if (path == "/api/v1/claims" && head.method == "GET") {
    ListClaims();
  } else if (path.starts_with(kClaims) && (head.method == "PUT" || head.method == "DELETE")) {
    std::string_view body;
    if (head.method == "PUT") {
      std::optional<std::string_view> b = BodyOf(head);
      if (!b) {
        return;  // answered, or waiting for the rest of the body
      }
      body = *b;
    }
    Claim(head.method, path.substr(kClaims.size()), body);
  } else if (path.starts_with(kAgents)) {
    std::string_view rest = path.substr(kAgents.size());
    const size_t slash = rest.find('/');
    const std::string_view id = rest.substr(0, slash);
    if (!proto::IsCanonicalAgentId(id)) {
      Respond(400, R"({"error":"not a canonical agent id"})");
    } else if (slash == std::string_view::npos && head.method == "GET") {
      ShowAgent(id);
    } else if (slash != std::string_view::npos && head.method == "POST") {
      Command(id, rest.substr(slash + 1), query);
    } else {
      Respond(405, R"({"error":"GET an agent, POST a command"})");
    }
  } else {
    Respond(404, R"({"error":"not found"})");
  }
}

void AdminConnection::ListAgents() {
  auto agents = server_.store().ListAgents(kMaxListed);
  if (!agents.ok()) {
    Respond(500, R"({"error":"state database error"})");
    return;
  }
  json list = json::array();
  for (const AgentRecord& r : *agents) {
    list.push_back(AgentJson(r, server_.FindLink(r.agent_id)));
  }
  Respond(200, json{{"agents", list}}.dump() + "\n");
}

void AdminConnection::ShowAgent(std::string_view id) {
  auto agent = server_.store().FindAgent(id);
  if (!agent.ok()) {
    Respond(500, R"({"error":"state database error"})");
  } else if (!agent->has_value()) {
    Respond(404, R"({"error":"unknown agent"})");
  } else {
    Respond(200, AgentJson(**agent, server_.FindLink(id)).dump() + "\n");
  }
}

// deactivate: recorded first (the agent stays refused even if it is offline now), then sent.
// restart and move need a live link: 409 otherwise.
void AdminConnection::Command(std::string_view id, std::string_view command,
                              std::string_view query) {
  auto agent = server_.store().FindAgent(id);
  if (!agent.ok() || !agent->has_value()) {
    Respond(agent.ok() ? 404 : 500, R"({"error":"unknown agent"})");
    return;
  }
  AgentLink* link = server_.FindLink(id);
  const int64_t now = ManagerServer::WallMs();
  if (command == "deactivate") {
    if (!server_.store().SetState(id, AgentState::kDeactivated).ok()) {
      Respond(500, R"({"error":"state database error"})");
      return;
    }
    server_.store().CheckWrite(
        "audit", server_.store().Audit({.at_ms = now,
                                        .actor = "admin",
                                        .action = "deactivate",
                                        .subject = std::string(id),
                                        .detail = link != nullptr ? "sent" : "offline"}));
    if (link != nullptr) {
      link->SendDeactivate("deactivated by the operator");
    }
    // Its keys still verify at the Streamers until they expire: revoke them there now.
    if (server_.revocations() != nullptr) {
      server_.revocations()->Revoke(std::string(id));
    }
    Respond(200, json{{"deactivated", true}, {"sent", link != nullptr}}.dump() + "\n");
    return;
  }
  if (link == nullptr) {
    Respond(409, R"({"error":"agent not linked"})");
    return;
  }
  if (command == "restart") {
    server_.store().CheckWrite(
        "audit",
        server_.store().Audit(
            {.at_ms = now, .actor = "admin", .action = "restart", .subject = std::string(id)}));
    link->SendRestart("restart requested by the operator");
    Respond(200, R"({"sent":true})");
  } else if (command == "move") {
    const std::string_view url = QueryValue(query, "streamer");
    bool known = false;
    for (size_t i = 0; i < server_.pool().size(); ++i) {
      known |= server_.pool().config(i).url == url;
    }
    if (!known) {
      Respond(400, R"({"error":"streamer= must name a configured Streamer URL"})");
      return;
    }
    server_.store().CheckWrite("audit", server_.store().Audit({.at_ms = now,
                                                               .actor = "admin",
                                                               .action = "move",
                                                               .subject = std::string(id),
                                                               .detail = std::string(url)}));
    link->SendAssign(url);
    link->SendSwitch(url);
    Respond(200, R"({"sent":true})");
  } else {
    Respond(404, R"({"error":"commands: deactivate, restart, move"})");
  }
}

std::optional<std::string_view> AdminConnection::BodyOf(const proto::RequestHead& head) {
  auto length_text = head.headers.Find("Content-Length");
  std::optional<uint64_t> length;
  if (length_text && head.headers.Count("Content-Length") == 1) {
    length = proto::ParseContentLength(*length_text);
  }
  if (!length) {
    Respond(411, R"({"error":"one Content-Length required, no chunked bodies"
  })");
    return std::nullopt;
  }
  if (*length > kMaxBody || buffer_.size() - head.head_bytes > *length) {
    Respond(413, R"({"error":"body over 1024 bytes, or bytes after it"})");
    return std::nullopt;
  }
  if (buffer_.size() - head.head_bytes < *length) {
    return std::nullopt;  // OnStreamData routes again when more arrives
  }
  return std::string_view(buffer_).substr(head.head_bytes);
}

// Where an agent is now, for whoever must reach it (a media server's control plane, or a
// gateway without a relocation): the Streamer it last reported itself connected to, else the
// first of its last ASSIGN; with that Streamer's frontend URL when configured.
void AdminConnection::Lookup(std::string_view id) {
  if (!proto::IsCanonicalAgentId(id)) {
    Respond(400, R"({"error":"not a canonical agent id"})");
    return;
  }
  auto agent = server_.store().FindAgent(id);
  if (!agent.ok()) {
    Respond(500, R"({"error":"state database error"})");
    return;
  }
  if (!agent->has_value() || (*agent)->state != AgentState::kActive) {
    Respond(404, R"({"error":"unknown or deactivated agent"})");
    return;
  }
  const AgentRecord& r = **agent;
  const bool reported = !r.located_url.empty();
  const std::string& url = reported ? r.located_url : r.streamer_url;
  if (url.empty()) {
    Respond(404, R"({"error":"agent not placed on any Streamer yet"})");
    return;
  }
  AgentLink* link = server_.FindLink(id);
  json j{{"agent", r.agent_id},
         {"streamer", url},
         {"source", reported ? "status" : "assignment"},
         {"linked", link != nullptr},
         {"frontend", nullptr}};
  if (const std::optional<size_t> i = server_.pool().Find(url); i) {
    if (const std::string& f = server_.pool().config(*i).frontend_url; !f.empty()) {
      j["frontend"] = f;
    }
  }
  Respond(200, j.dump() + "\n");
}

void AdminConnection::ListClaims() {
  auto claims = server_.store().ListClaims(kMaxListed);
  if (!claims.ok()) {
    Respond(500, R"({"error":"state database error"})");
    return;
  }
  json list = json::array();
  for (const ClaimRecord& c : *claims) {
    // Never the hash: it is as good as the token for an offline guess.
    list.push_back(
        {{"serial", c.serial}, {"operator", c.operator_id}, {"created_at_ms", c.created_at_ms}});
  }
  Respond(200, json{{"claims", list}}.dump() + "\n");
}

void AdminConnection::Claim(std::string_view method, std::string_view serial,
                            std::string_view body) {
  if (!proto::IsCanonicalAgentId(serial)) {
    Respond(400, R"({"error":"serial must be 1..63 of [a-z0-9-]"})");
    return;
  }
  const int64_t now = ManagerServer::WallMs();
  if (method == "DELETE") {
    auto was = server_.store().DeleteClaim(serial);
    if (!was.ok()) {
      Respond(500, R"({"error":"state database error"})");
      return;
    }
    server_.store().CheckWrite(
        "audit",
        server_.store().Audit(
            {.at_ms = now, .actor = "admin", .action = "unclaim", .subject = std::string(serial)}));
    Respond(*was ? 200 : 404, json{{"serial", serial}, {"was_claimed", *was}}.dump() + "\n");
    return;
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("operator") || !doc["operator"].is_string() ||
      !doc.contains("token") || !doc["token"].is_string()) {
    Respond(400, R"({"error":"body must be {\"operator\":id,\"token\":label token}"})");
    return;
  }
  const std::string& op = doc["operator"].get_ref<const std::string&>();
  const std::string& token = doc["token"].get_ref<const std::string&>();
  if (!proto::IsCanonicalAgentId(op)) {
    Respond(400, R"({"error":"operator must be 1..63 of [a-z0-9-]"})");
    return;
  }
  if (!IsValidClaimToken(token)) {
    Respond(400, R"({"error":"token must be 8..128 printable characters, no spaces"})");
    return;
  }
  if (!server_.store().PutClaim(MakeClaim(serial, op, token, now)).ok()) {
    Respond(500, R"({"error":"state database error"})");
    return;
  }
  // The token is never written anywhere but as its salted hash: not in the audit, not in logs.
  server_.store().CheckWrite("audit", server_.store().Audit({.at_ms = now,
                                                             .actor = "admin",
                                                             .action = "claim",
                                                             .subject = std::string(serial),
                                                             .detail = op}));
  Respond(200, json{{"serial", serial}, {"operator", op}}.dump() + "\n");
}

void AdminConnection::ListAudit() {
  auto entries = server_.store().RecentAudit(200);
  if (!entries.ok()) {
    Respond(500, R"({"error":"state database error"})");
    return;
  }
  json list = json::array();
  for (const AuditEntry& e : *entries) {
    list.push_back({{"at_ms", e.at_ms},
                    {"actor", e.actor},
                    {"action", e.action},
                    {"subject", e.subject},
                    {"detail", e.detail}});
  }
  Respond(200, json{{"audit", list}}.dump() + "\n");
}

void AdminConnection::OnStreamEof(runtime::Stream& /*stream*/) {
  if (!answered_) {
    stream_->Close(0);
  }
}

void AdminConnection::OnStreamClosed(runtime::Stream& /*stream*/, int /*error*/) { delete this; }

}  // namespace camtunnel::manager
