// The first phase of every agent-side connection: TLS handshake (if any), then the upgrade head.
// A control upgrade becomes a ControlSession; a data upgrade is matched to its pending tunnel and
// handed to the frontend connection that waits for it. Everything here is untrusted input:
// bounded, deadlined, answered with a status and counted.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>

#include "gateway/head_reader.h"
#include "proto/upgrade.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::gateway {

class GatewayShard;
enum class AgentResult : uint8_t;

class AgentHandshake final : public runtime::StreamHandler {
 public:
  static void Start(GatewayShard& gw, int fd, SSL_CTX* tls_ctx);

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  AgentHandshake(GatewayShard& gw, uint64_t started_ms);
  void OnHead(const proto::RequestHead& head);
  void OnControl(const proto::UpgradeRequest& req);
  void OnData(const proto::UpgradeRequest& req);
  // Answers an error status, counts it, and lets the stream linger closed.
  void Refuse(int status, std::string_view text, AgentResult result, bool data);
  void Detach();  // the stream now belongs to someone else; free this object
  // Hands the connection, with every byte read so far, to the shard that owns what its head
  // names (the agent's home shard, or the shard holding the tunnel); the head is read again
  // there. Queue full: 503, which the agent reads as "busy, back off".
  void MoveTo(unsigned shard, bool data);
  void OnDetached(runtime::Stream* stream, unsigned shard, bool data);
  static void Adopt(GatewayShard& gw, runtime::Stream* stream, std::string bytes,
                    uint64_t started_ms);

  GatewayShard& gw_;
  runtime::Stream* stream_ = nullptr;
  HeadReader head_;
  runtime::Timer deadline_;
  uint64_t started_ms_;
  size_t head_bytes_ = 0;
  bool counted_unauthenticated_ = true;
  bool counted_ = false;  // an outcome was counted already
  bool moving_ = false;   // detaching for another shard: bytes are only collected
};

}  // namespace camtunnel::gateway
