// The manager's public listeners, on the shared HTTP server (http/server.h): POST
// /api/v1/activate (answered and closed) or GET /camtunnel/v1/manager (the stream is handed to
// an AgentLink). On a plain listener (--plain_listen) only the manager upgrade is served:
// activation hands out the agent secret, so it is refused there (403) on the head alone, before
// any body is read. Everything here is untrusted: the head is bounded (8 KiB), the body too
// (4 KiB), the whole request has the handshake deadline, unauthenticated connections are
// capped, and every refusal is a clear status and a counter.
#pragma once

#include <memory>

#include "http/server.h"

namespace camtunnel::manager {

class ManagerServer;

std::unique_ptr<http::Server> MakePublicServer(ManagerServer& server);
// A connection accepted on a public listener (TLS unless `plain`); closed at once when the
// unauthenticated cap is reached, which an agent reads as "busy, back off".
void AcceptPublic(ManagerServer& server, http::Server& http, int fd, bool plain);

}  // namespace camtunnel::manager
