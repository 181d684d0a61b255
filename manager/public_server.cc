// See public_server.h.
#include "manager/public_server.h"

#include <unistd.h>

#include <string>
#include <string_view>

#include "manager/activation.h"
#include "manager/agent_link.h"
#include "manager/manager_server.h"
#include "proto/http_answer.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {
namespace {

// "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1": the rate limit is per address, not per port.
std::string_view SourceAddress(std::string_view peer) {
  if (peer.starts_with('[')) {
    const size_t close = peer.find(']');
    return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
  }
  const size_t colon = peer.rfind(':');
  return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

void RespondWithRetry(const http::Reply& reply, int status, std::string_view body,
                      int64_t retry_after_ms) {
  if (retry_after_ms < 0) {
    reply.Json(status, body);
    return;
  }
  const std::string seconds = std::to_string((retry_after_ms + 999) / 1000);
  const proto::HeaderField retry[] = {{"Retry-After", seconds}};
  reply.Respond(status, "application/json", body, retry);
}

void Upgrade(http::Exchange& ex, ManagerServer& server) {
  if (server.config().role == ManagerRole::kActivation) {
    ex.Error(404, "an activation server: manager links go to the managing server");
    return;
  }
  auto upgrade = proto::ParseManagerRequest(ex.head());
  if (!upgrade) {
    ex.Error(400, "not a valid camtunnel/1 manager upgrade");
    return;
  }
  if (server.live_links() >= server.config().max_links) {
    // Busy at once, not a timeout: the agent goes on to the next manager of its list.
    ++server.counters().links_refused_busy;
    RespondWithRetry(ex.Later(), 503, proto::JsonErrorBody("manager at its link capacity"),
                     static_cast<int64_t>(server.config().reconnect_window_ms));
    return;
  }
  // The agent's record comes from a store worker; the connection waits (its request deadline
  // still runs) and is taken only if it is still there.
  server.store().Run<absl::StatusOr<std::optional<AgentRecord>>>(
      upgrade->agent_id, [id = upgrade->agent_id](StoreConnection& c) { return c.FindAgent(id); },
      [&server = server, request = *upgrade,
       reply = ex.Later()](absl::StatusOr<std::optional<AgentRecord>> agent) {
        http::Exchange* exchange = reply.exchange();
        if (exchange == nullptr) {
          return;  // gone meanwhile (its deadline, or the agent hung up)
        }
        if (!agent.ok()) {
          server.store().Observe(agent.status());
          RespondWithRetry(reply, 503, proto::JsonErrorBody("state database unavailable"), 5000);
          return;
        }
        if (!agent->has_value() || (*agent)->state != AgentState::kActive) {
          // Without the agent's secret the manager cannot prove itself: nothing to upgrade to.
          ++server.counters().link_unknown_agent;
          exchange->Error(401, "unknown or deactivated agent");
          return;
        }
        // The link takes the stream (and the unauthenticated slot).
        http::Exchange::Taken taken = exchange->TakeStream();
        AgentLink::Start(
            server, taken.stream, request, **agent,
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(taken.rest.data()),
                                     taken.rest.size()));
      });
}

void Activate(http::Exchange& ex, ManagerServer& server) {
  if (server.config().role == ManagerRole::kManaging) {
    ex.Error(404, "a managing server: activation is served by the activation server");
    return;
  }
  if (!ex.stream().tls()) {
    // The answer carries the agent secret and the request the factory secret: never in clear.
    // Refused on the head, so the body (if a misconfigured client sends one) is never read.
    ++server.counters().plain_activations_refused;
    ex.Error(403, "activation is HTTPS only");
    return;
  }
  if (ex.method() != "POST") {
    const proto::HeaderField allow[] = {{"Allow", "POST"}};
    ex.Error(405, "POST only", allow);
    return;
  }
  ex.ReadBody(kMaxActivationBody, [&server = server](http::Exchange& e, std::string_view body) {
    const std::string source(SourceAddress(e.stream().peer_text()));
    // With split roles the answer waits for the managing server; the connection may be gone by
    // then (its deadline, or the camera hung up).
    server.activation().Handle(body, source, ManagerServer::WallMs(),
                               [reply = e.Later()](const ActivationAnswer& a) {
                                 RespondWithRetry(reply, a.status, a.body + "\n", a.retry_after_ms);
                               });
  });
}

}  // namespace

std::unique_ptr<http::Server> MakePublicServer(ManagerServer& server) {
  http::Router router;
  // Any method: the upgrade parser and the activation handler give their own answers.
  router.Add("", proto::kManagerPath,
             [&server = server](http::Exchange& ex) { Upgrade(ex, server); });
  router.Add("", "/api/v1/activate",
             [&server = server](http::Exchange& ex) { Activate(ex, server); });
  http::ServerOptions options{
      .keep_alive = false,
      .request_timeout_ms = server.config().handshake_timeout_ms,
      .on_answer =
          [&server = server](int status) {
            if (status >= 400) {
              ++server.counters().bad_requests;
            }
          },
      .on_timeout = [&server = server] { ++server.counters().link_timeouts; },
      .on_closed = [&server = server] { server.ReleaseUnauthenticated(); },
  };
  return std::make_unique<http::Server>(server.shard(), std::move(router), std::move(options));
}

void AcceptPublic(ManagerServer& server, http::Server& http, int fd, bool plain) {
  ++server.counters().connections_accepted;
  if (!server.TryAdmitUnauthenticated()) {
    // Closing at once reads as "busy, back off" to an agent (PROTOCOL.md section 4).
    ++server.counters().connections_refused_busy;
    close(fd);
    return;
  }
  http.Accept(fd, plain ? nullptr : server.tls_context());
}

}  // namespace camtunnel::manager
