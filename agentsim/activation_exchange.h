// One activation request of a simulated agent (PROTOCOL.md section 10.1): an HTTPS POST of the
// JSON body to the activation server's /api/v1/activate, the answer read to its end (the server
// always closes), its status, Retry-After and body handed back once. Self-owned: it frees
// itself when its connection has closed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "agentsim/sim_context.h"
#include "agentsim/url_endpoint.h"
#include "proto/http_head.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

struct ActivationAnswer {
  int status = 0;       // 0: no answer; `failure` says why
  std::string failure;  // "connect_refused", "closed", "timeout", "malformed_answer"...
  int64_t retry_after_ms = -1;
  std::string body;
};

// An answer's Retry-After (delay-seconds) in ms; -1 when absent or not a number.
int64_t RetryAfterMs(const proto::ResponseHead& head);

class ActivationExchange final : public runtime::StreamHandler {
 public:
  using Done = std::function<void(const ActivationAnswer& answer)>;
  static constexpr size_t kMaxAnswerBytes = 16384;

  // Dials `server` from agent `agent_index`'s source address and posts `body`; `done` runs once,
  // never inside Start, within `timeout_ms`.
  static void Start(SimContext& ctx, const UrlEndpoint& server, uint32_t agent_index,
                    const std::string& body, uint64_t timeout_ms, Done done);

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  ActivationExchange(SimContext& ctx, std::string request, Done done);
  void OnDialed(runtime::Stream* stream, int error);
  // Whether the answer in `buffer_` is complete; fills `answer_` when it is (or is malformed).
  bool ParseAnswer(bool at_end);
  void Finish(const ActivationAnswer& answer);

  SimContext& ctx_;
  std::string request_;
  Done done_;
  bool finished_ = false;
  runtime::Stream* stream_ = nullptr;
  std::string buffer_;
  ActivationAnswer answer_;
  runtime::Timer deadline_;
};

}  // namespace camtunnel::agentsim
