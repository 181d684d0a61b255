// The first request on the manager's public TLS listener: POST /api/v1/activate (answered and
// closed) or GET /camtunnel/v1/manager (handed over to an AgentLink). On a plain listener
// (--plain_listen) only the manager upgrade is served: activation hands out the agent secret,
// so it is refused there (403) on the head alone, before any body is read. Everything here is
// untrusted: the head is bounded (8 KiB), the body too (4 KiB), the whole request has the
// handshake deadline, and every refusal is a clear status and a counter.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proto/http_head.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class ManagerServer;

class PublicConnection final : public runtime::StreamHandler {
 public:
  static void Start(ManagerServer& server, int fd, bool plain);

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  PublicConnection(ManagerServer& server, bool plain) : server_(server), plain_(plain) {}
  ~PublicConnection() { *alive_ = false; }
  void Respond(int status, std::string_view body, int64_t retry_after_ms = -1);
  void Route(const proto::RequestHead& head);
  void Activate();  // the body is complete
  void Upgrade(const proto::RequestHead& head);

  ManagerServer& server_;
  const bool plain_;  // accepted on a plain listener: no TLS, no activation
  runtime::Stream* stream_ = nullptr;
  std::string buffer_;
  size_t head_bytes_ = 0;  // once the head is parsed
  size_t body_bytes_ = 0;  // Content-Length of an activation
  bool answered_ = false;
  runtime::Timer deadline_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once deleted
};

}  // namespace camtunnel::manager
