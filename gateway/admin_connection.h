// One request on the admin listener (/metrics, /healthz, /readyz, /api/v1/agents (paged),
// /api/v1/agents/{id} (GET, DELETE), POST /api/v1/agents/{id}/probe, /api/v1/drain), answered on
// the shard's own loop and closed: admin traffic is rare, so no keep-alive. The admin listener is
// the first shard's; a request about one agent is handed to that agent's home shard, and one
// about all of them (list, metrics, drain, denylist) asks every shard (fan_out.h).
#pragma once

#include <memory>
#include <string>

#include "gateway/head_reader.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;
class CameraProbe;

class AdminConnection final : public runtime::StreamHandler {
 public:
  static void Start(GatewayShard& gw, int fd);

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  explicit AdminConnection(GatewayShard& gw);
  void Arm();
  // Per-agent requests run on the agent's home shard: the connection moves there with its head.
  void MoveTo(unsigned shard);
  void OnDetached(runtime::Stream* stream, unsigned shard);
  static void Adopt(GatewayShard& gw, runtime::Stream* stream, std::string bytes);
  void Metrics();
  // GET /api/v1/relocations: every shard's entries (each agent's lives on its home shard).
  void ListRelocations();
  // 503 for an answer that needed a shard which could not be reached.
  void ShardUnreachable();
  void Respond(int status, std::string_view content_type, std::string_view body);
  void Route(const proto::RequestHead& head);
  bool Authorized(const proto::RequestHead& head) const;
  void Probe(std::string_view agent_id, std::string_view query);
  void Agent(std::string_view method, std::string_view agent_id);
  void ListAgents(std::string_view query);
  void Drain(std::string_view method);
  void Denylist(std::string_view method, std::string_view agent_id);

  GatewayShard& gw_;
  runtime::Stream* stream_ = nullptr;
  HeadReader head_;
  runtime::Timer timer_;
  bool answered_ = false;
  bool moving_ = false;           // detaching for another shard: bytes (a PUT's body) are only kept
  CameraProbe* probe_ = nullptr;  // while a probe runs for this request
  // Cleared when the connection ends, so answers gathered from other shards after that are
  // dropped instead of reaching a freed connection.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace camtunnel::gateway
