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
#include "gateway/fan_out.h"
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

// One shard's relocation entries, at most a page of them, by id.
std::vector<std::pair<std::string, nlohmann::json>> RelocationRows(GatewayShard& gw) {
  std::vector<std::pair<std::string, nlohmann::json>> rows;
  const uint64_t now = gw.shard().now_ms();
  gw.relocations().ForEach([&](std::string_view id, std::string_view to, uint64_t expires) {
    rows.emplace_back(std::string(id),
                      nlohmann::json{{"agent", std::string(id)},
                                     {"frontend", std::string(to)},
                                     {"expires_in_ms", expires > now ? expires - now : 0}});
  });
  return rows;
}

std::optional<RelocationAnswer> RelocationRoute(GatewayShard& gw, const proto::RequestHead& head,
                                                std::string_view agent_id,
                                                std::string_view after_head) {
  using nlohmann::json;
  if (agent_id.empty()) {
    return RelocationAnswer{405, {{"error", "GET the list; PUT or DELETE /{agent id}"}}};
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

AdminConnection::AdminConnection(GatewayShard& gw) : gw_(gw) {
  timer_.set_callback([this] { stream_->Close(ETIMEDOUT); });
}

void AdminConnection::Arm() {
  gw_.shard().timers().Arm(timer_, gw_.shard().now_ms(), kAdminTimeoutMs);
}

void AdminConnection::Start(GatewayShard& gw, int fd) {
  auto* a = new AdminConnection(gw);
  a->stream_ = runtime::Stream::Create(gw.shard(), fd, nullptr, a);
  a->Arm();
  a->stream_->Start();
}

void AdminConnection::MoveTo(unsigned shard) {
  moving_ = true;
  gw_.shard().timers().Cancel(timer_);
  if (!stream_->Detach([this, shard](runtime::Stream* s) { OnDetached(s, shard); })) {
    ShardUnreachable();
  }
}

void AdminConnection::OnDetached(runtime::Stream* stream, unsigned shard) {
  auto adopt = [stream, bytes = head_.Take()](GatewayShard& to) mutable {
    Adopt(to, stream, std::move(bytes));
  };
  if (!gw_.HandOver(shard, stream, this, std::move(adopt))) {
    ShardUnreachable();
    return;
  }
  *alive_ = false;
  delete this;
}

void AdminConnection::Adopt(GatewayShard& gw, runtime::Stream* stream, std::string bytes) {
  auto* a = new AdminConnection(gw);
  a->stream_ = stream;
  stream->Attach(gw.shard(), a);
  a->Arm();
  a->OnStreamData(*stream, Bytes(bytes));
}

void AdminConnection::ShardUnreachable() {
  Respond(503, "application/json",
          R"({"error":"a shard is too busy to answer; retry"})"
          "\n");
}

void AdminConnection::OnStreamData(runtime::Stream& /*stream*/, std::span<const uint8_t> bytes) {
  if (moving_) {
    head_.Append(bytes);  // read again on the target shard
    return;
  }
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
  const bool probe = head.method == "POST" && path.starts_with(kAgents) && path.ends_with(kProbe) &&
                     path.size() > kAgents.size() + kProbe.size();
  const bool agent = path.starts_with(kAgents) && path.size() > kAgents.size() &&
                     path.substr(kAgents.size()).find('/') == std::string_view::npos;
  if (probe || agent) {
    const std::string_view id =
        path.substr(kAgents.size(), path.size() - kAgents.size() - (probe ? kProbe.size() : 0));
    if (const unsigned home = gw_.HomeShard(id); home != gw_.index()) {
      MoveTo(home);
    } else if (probe) {
      Probe(id, query);
    } else {
      Agent(head.method, id);
    }
  } else if (path == "/api/v1/drain") {
    Drain(head.method);
  } else if (path == kDenylist || (path.starts_with(kDenylist) && path[kDenylist.size()] == '/')) {
    Denylist(head.method, path.substr(std::min(path.size(), kDenylist.size() + 1)));
  } else if (path == kRelocations ||
             (path.starts_with(kRelocations) && path[kRelocations.size()] == '/')) {
    const std::string_view id = path.substr(std::min(path.size(), kRelocations.size() + 1));
    if (id.empty() && head.method == "GET") {
      ListRelocations();
    } else if (const unsigned home = gw_.HomeShard(id);
               !id.empty() && proto::IsCanonicalAgentId(id) && home != gw_.index()) {
      MoveTo(home);  // an agent's relocation is read where its media requests are routed
    } else if (auto a = RelocationRoute(gw_, head, id, head_.After(head))) {
      Respond(a->status, "application/json", a->body.dump() + "\n");
    }
  } else if (head.method != "GET") {
    Respond(405, "text/plain", "only GET is served here for now\n");
  } else if (path == "/metrics") {
    Metrics();
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
  // Each shard sorts its own matches and sends at most one page of them; the page is the first
  // `limit` of their union.
  struct Part {
    std::vector<std::pair<std::string, nlohmann::json>> rows;
    size_t total = 0;     // sessions in the state asked for
    size_t matching = 0;  // of those, after the cursor
  };
  auto each = [limit, cursor, state](GatewayShard& gw) {
    Part part;
    std::vector<std::pair<std::string_view, const ControlSession*>> match;
    gw.registry().ForEachSession([&](std::string_view id, const ControlSession* s) {
      if (!state.empty() && StateOf(*s) != state) {
        return;
      }
      ++part.total;
      if (cursor.empty() || id > std::string_view(cursor)) {
        match.emplace_back(id, s);
      }
    });
    part.matching = match.size();
    // Only the page's first `limit` ids need ordering.
    const size_t n = std::min(limit, match.size());
    std::partial_sort(match.begin(), match.begin() + static_cast<std::ptrdiff_t>(n), match.end());
    for (size_t i = 0; i < n; ++i) {
      part.rows.emplace_back(std::string(match[i].first),
                             AgentJson(gw, match[i].first, *match[i].second));
    }
    return part;
  };
  FanOut<Part>(gw_, each, [this, alive = alive_, limit](std::vector<std::optional<Part>> parts) {
    if (!*alive) {
      return;
    }
    std::vector<std::pair<std::string, nlohmann::json>> rows;
    size_t total = 0;
    size_t matching = 0;
    for (auto& part : parts) {
      if (!part) {
        ShardUnreachable();
        return;
      }
      total += part->total;
      matching += part->matching;
      std::move(part->rows.begin(), part->rows.end(), std::back_inserter(rows));
    }
    const size_t n = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      list.push_back(std::move(rows[i].second));
    }
    nlohmann::json page = {{"agents", list}, {"total", total}};
    page["next_cursor"] = matching > n ? nlohmann::json(rows[n - 1].first) : nlohmann::json();
    Respond(200, "application/json", page.dump() + "\n");
  });
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
  if (method != "PUT" && method != "DELETE") {
    Respond(405, "text/plain", "PUT or DELETE\n");
    return;
  }
  // Every shard keeps its own copy (read at each handshake without a lock); the agent's home
  // shard also ends its live session. A shard that cannot be reached makes the answer 503, so
  // the caller (the manager) retries until every copy has it.
  const bool deny = method == "PUT";
  const std::string id(agent_id);
  auto each = [deny, id](GatewayShard& gw) {
    if (!deny) {
      return gw.Allow(id);
    }
    gw.Deny(id);
    if (ControlSession* s = gw.registry().Find(id); s != nullptr) {
      s->GoAway("revoked", 0);
      return true;
    }
    return false;
  };
  FanOut<bool>(gw_, each, [this, alive = alive_, deny, id](std::vector<std::optional<bool>> r) {
    if (!*alive) {
      return;
    }
    bool any = false;
    for (const auto& one : r) {
      if (!one) {
        ShardUnreachable();
        return;
      }
      any = any || *one;
    }
    if (deny) {
      LogEvent(LogLevel::kInfo, "agent_revoked", {Kv("agent", id), Kv("kicked", any)});
      Respond(200, "application/json",
              nlohmann::json{{"denied", id}, {"kicked", any}}.dump() + "\n");
    } else {
      LogEvent(LogLevel::kInfo, "agent_unrevoked", {Kv("agent", id)});
      Respond(any ? 200 : 404, "application/json",
              nlohmann::json{{"allowed", id}, {"was_denied", any}}.dump() + "\n");
    }
  });
}

// POST starts a drain and keeps the process up, not ready (a SIGTERM later still exits once
// drained); GET says how far it is.
void AdminConnection::Drain(std::string_view method) {
  if (method != "POST" && method != "GET") {
    Respond(405, "text/plain", "GET or POST\n");
    return;
  }
  struct Status {
    bool draining = false;
    bool drained = false;
    int64_t tunnels_open = 0;
    size_t agents = 0;
  };
  const bool start = method == "POST";
  // Every other shard first, this one (which answers /readyz) when they all have: once /readyz
  // says "draining", no shard accepts any more.
  const unsigned self = gw_.index();
  auto each = [start, self](GatewayShard& gw) {
    if (start && gw.index() != self) {
      gw.Drain({});
    }
    return Status{gw.draining(), gw.drained(), gw.metrics().tunnels_open.Get(),
                  gw.registry().online()};
  };
  FanOut<Status>(gw_, each, [this, alive = alive_, start](std::vector<std::optional<Status>> r) {
    if (!*alive) {
      return;
    }
    if (start) {
      gw_.Drain({});
      r[gw_.index()] = Status{gw_.draining(), gw_.drained(), gw_.metrics().tunnels_open.Get(),
                              gw_.registry().online()};
    }
    Status all{true, true, 0, 0};
    for (const auto& one : r) {
      if (!one) {
        ShardUnreachable();
        return;
      }
      all.draining = all.draining && one->draining;
      all.drained = all.drained && one->drained;
      all.tunnels_open += one->tunnels_open;
      all.agents += one->agents;
    }
    const nlohmann::json body = {{"draining", all.draining},
                                 {"drained", all.drained},
                                 {"tunnels_open", all.tunnels_open},
                                 {"agents", all.agents}};
    Respond(start ? 202 : 200, "application/json", body.dump() + "\n");
  });
}

void AdminConnection::ListRelocations() {
  using Rows = std::vector<std::pair<std::string, nlohmann::json>>;
  FanOut<Rows>(gw_, RelocationRows, [this, alive = alive_](std::vector<std::optional<Rows>> parts) {
    if (!*alive) {
      return;
    }
    Rows rows;
    for (auto& part : parts) {
      if (!part) {
        ShardUnreachable();
        return;
      }
      std::move(part->begin(), part->end(), std::back_inserter(rows));
    }
    const size_t n = std::min<size_t>(rows.size(), kMaxPage);
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      list.push_back(std::move(rows[i].second));
    }
    Respond(200, "application/json",
            nlohmann::json{{"relocations", list}, {"total", rows.size()}}.dump() + "\n");
  });
}

// Every shard's gauges from its own thread; the counters are read directly (relaxed atomic
// cells with one writer each) when RenderMetrics collects them. The process's own facts are
// read there too, once per scrape.
void AdminConnection::Metrics() {
  if (gw_.gateway() == nullptr) {
    Respond(200, "text/plain; version=0.0.4; charset=utf-8", gw_.RenderMetricsText());
    return;
  }
  auto each = [](GatewayShard& gw) { return gw.CollectFacts(); };
  FanOut<GatewayFacts>(
      gw_, each, [this, alive = alive_](std::vector<std::optional<GatewayFacts>> r) {
        if (!*alive) {
          return;
        }
        GatewayFacts facts;
        std::vector<const ShardMetrics*> cells;
        Gateway& gateway = *gw_.gateway();
        for (unsigned i = 0; i < r.size(); ++i) {
          if (!r[i]) {
            ShardUnreachable();
            return;
          }
          facts.AddShard(*r[i]);
          cells.push_back(&gateway.shard(i).metrics());
        }
        facts.log_lines_suppressed = static_cast<double>(SuppressedLogLines());
        Respond(200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(cells, facts));
      });
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
  *alive_ = false;
  gw_.shard().timers().Cancel(timer_);
  if (probe_ != nullptr) {
    probe_->Cancel();
  }
  delete this;
}

}  // namespace camtunnel::gateway
