// One request on the manager's admin listener (plain HTTP, loopback by default; bearer token
// required when bound beyond loopback): /healthz, /metrics, GET /api/v1/agents[/{id}],
// POST /api/v1/agents/{id}/deactivate|restart|move?streamer=URL, GET /api/v1/lookup/{id} (the
// gateway that holds an agent now), GET /api/v1/claims, PUT|DELETE /api/v1/claims/{serial},
// GET /api/v1/audit; POST /api/v1/handover from a separate activation server (PROTOCOL.md
// section 10.4, MACed instead of the bearer token). Answered on the shard's loop and closed.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proto/http_head.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {

class ManagerServer;

class AdminConnection final : public runtime::StreamHandler {
 public:
  static void Start(ManagerServer& server, int fd);

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  explicit AdminConnection(ManagerServer& server) : server_(server) {}
  void Respond(int status, std::string_view body);
  void Route(const proto::RequestHead& head);
  bool Authorized(const proto::RequestHead& head) const;
  void ListAgents();
  void ShowAgent(std::string_view id);
  void Command(std::string_view id, std::string_view command, std::string_view query);
  void ListAudit();
  void Lookup(std::string_view id);
  void ListClaims();
  // PUT (body {"operator": id, "token": label token}) or DELETE.
  void Claim(std::string_view method, std::string_view serial, std::string_view body);
  // The request body once all of it is buffered; nullopt while more is due. Answers (and
  // returns nullopt) when the length is missing or over kMaxBody.
  std::optional<std::string_view> BodyOf(const proto::RequestHead& head);

  ManagerServer& server_;
  runtime::Stream* stream_ = nullptr;
  std::string buffer_;
  bool answered_ = false;
  runtime::Timer deadline_;
};

}  // namespace camtunnel::manager
