// An established tunnel: the media server's stream and the agent's data stream, relayed both
// ways on one shard. Client->camera bytes go through the RequestFilter (agent check, path-form
// rewriting); camera->client bytes are passed untouched. Backpressure: a destination over its
// high watermark pauses its source until it drains. Half-close is propagated; an error on one
// side resets the other. Lives until both streams are closed.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gateway/agent_registry.h"
#include "gateway/frontend_route.h"
#include "gateway/request_filter.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;

class TunnelRelay {
 public:
  // Takes over both streams. `client_bytes` is everything the client sent so far (its first
  // head included); `camera_bytes` what the agent sent behind its data head; `sent_ahead` how
  // many bytes of the camera-bound stream are already on `camera` (early data on a spare).
  static void Start(GatewayShard& gw, runtime::Stream* client, runtime::Stream* camera,
                    const FrontendRoute& route, std::string_view camera_authority,
                    std::string_view agent_id, std::string_view client_bytes,
                    std::span<const uint8_t> camera_bytes, size_t sent_ahead);

 private:
  class Side final : public runtime::StreamHandler {
   public:
    Side(TunnelRelay* relay, bool is_client) : relay_(relay), is_client_(is_client) {}
    void OnStreamData(runtime::Stream& s, std::span<const uint8_t> bytes) override;
    void OnStreamEof(runtime::Stream& s) override;
    void OnStreamWritable(runtime::Stream& s) override;
    void OnStreamClosed(runtime::Stream& s, int error) override;
    runtime::Stream* RelayTarget(runtime::Stream& s) override;
    void OnStreamRelayed(runtime::Stream& s, size_t bytes) override;

   private:
    TunnelRelay* relay_;
    bool is_client_;
  };

  TunnelRelay(GatewayShard& gw, runtime::Stream* client, runtime::Stream* camera,
              const FrontendRoute& route, std::string_view camera_authority,
              std::string_view agent_id);
  void FromClient(std::span<const uint8_t> bytes);
  void FromCamera(std::span<const uint8_t> bytes);
  // Writes what the filter forwards, less what already went ahead; counts all of it.
  void ToCamera(std::span<const uint8_t> bytes);
  void CountToCamera(size_t n);
  // Bytes the camera sent that are now queued to the client (copied or decrypted there).
  void CountToClient(size_t n);
  void Throttle(runtime::Stream* source, runtime::Stream* destination);
  void OnClosed(bool is_client, int error);
  void AnswerRefusal();

  // How long a refused connection waits for the camera to finish its earlier answers.
  static constexpr uint64_t kRefusalDrainMs = 2000;
  GatewayShard& gw_;
  runtime::Stream* client_;
  runtime::Stream* camera_;
  Side client_side_{this, true};
  Side camera_side_{this, false};
  RequestFilter filter_;
  FrontendProtocol protocol_;
  std::string agent_id_;
  AgentStats* stats_;  // the agent's, on this (its home) shard; null past the registry's bound
  std::string scratch_;
  size_t sent_ahead_ = 0;  // forwarded bytes still to skip: they went behind OPEN on a spare
  FrontendError refusal_ = FrontendError::kOk;  // a later request the gateway refuses
  std::string refusal_cseq_;
  bool refusal_answered_ = false;
  runtime::Timer refusal_timer_;
  bool client_closed_ = false;
  bool camera_closed_ = false;
};

}  // namespace camtunnel::gateway
