// A media server's connection on the frontend listener, until its tunnel is established: reads
// and routes the first request head, checks the agent and service, creates the pending tunnel,
// sends OPEN on the agent's control session and waits (deadlined) for the data connection or
// OPEN_FAILED. Every failure is answered in the client's protocol (RTSP or HTTP) and counted.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gateway/agent_waiters.h"
#include "gateway/frontend_route.h"
#include "gateway/gateway_metrics.h"
#include "gateway/head_reader.h"
#include "gateway/tunnel_waiter.h"
#include "proto/identifiers.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;

class FrontendConnection final : public runtime::StreamHandler,
                                 public TunnelWaiter,
                                 public AgentWaiters::Waiter {
 public:
  // `source_allowed`: the peer is in frontend_allow (or no allowlist is set). A refused source
  // still gets its answer (403) once its head arrives, so the operator sees why in the client.
  static void Start(GatewayShard& gw, int fd, bool source_allowed);

  // From the agent side, while waiting.
  void OnDataConnection(runtime::Stream* data, std::span<const uint8_t> camera_bytes,
                        size_t sent_ahead) override;
  std::string FirstBytes(std::string_view camera_authority) override;
  void OnOpenFailed(int error, std::string_view text) override;
  void OnAgentGone() override;
  // Held for an agent during a takeover: it connected.
  void OnAgentArrived() override;

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  enum class State : uint8_t { kHead, kMoving, kWaitingAgent, kOpening, kDone };

  explicit FrontendConnection(GatewayShard& gw);
  void OnHead(const proto::RequestHead& head);
  // Gate before routing: source allowlist, then the bearer token of HTTP and CONNECT requests.
  bool Admitted(const proto::RequestHead& head);
  // Answers `status` in the client's protocol, counts it, and closes gracefully.
  void Answer(int status, std::string_view detail);
  void AnswerError(FrontendError error);
  void FailOpen(int status, OpenResult result, std::string_view detail);
  // Opens the tunnel for the routed head (on the agent's home shard); or redirects, holds or
  // answers why not.
  void Open(const proto::RequestHead& head);
  // RTSP 302 / HTTP 307 to the request's URL at `authority`; false when no URL can be built.
  bool Redirect(const proto::RequestHead& head, std::string_view authority);
  // Hands the connection, with every byte read so far, to the agent's home shard, where its
  // session and tunnels live; the head is routed again there. Queue full: 503.
  void MoveTo(unsigned shard);
  void OnDetached(runtime::Stream* stream, unsigned shard);
  static void Adopt(GatewayShard& gw, runtime::Stream* stream, const std::string& bytes);

  GatewayShard& gw_;
  runtime::Stream* stream_ = nullptr;
  State state_ = State::kHead;
  bool source_allowed_ = true;
  HeadReader head_;
  runtime::Timer timer_;
  FrontendProtocol protocol_ = FrontendProtocol::kHttp;
  RequestKind kind_ = RequestKind::kHttp;
  std::string cseq_;
  FrontendRoute route_;
  std::string camera_authority_;
  proto::TunnelId tunnel_id_ = 0;
  uint64_t open_started_ns_ = 0;
  bool held_ = false;  // waited for its agent once already (takeover)
};

}  // namespace camtunnel::gateway
