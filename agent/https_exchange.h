// One HTTP request over a fresh transport, read to the end (activation, PROTOCOL.md section
// 10.1): resolve, connect, TLS handshake (peer verified by the factory's trust), write, read the
// answer until the server closes (the manager always answers with Connection: close), bounded
// to a head plus kMaxBody bytes and by a deadline.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/event_loop.h"
#include "agent/outbound_connector.h"
#include "agent/tls_transport.h"
#include "agent/upgrade_dialer.h"

namespace camtunnel::agent {

struct HttpsResult {
  bool ok = false;  // a complete answer arrived; else `error` says why
  int status = 0;
  int64_t retry_after_ms = -1;
  std::string body;
  std::string error;
};

// Reads a whole answer (every byte up to the server's close): a valid response head, a body of
// exactly Content-Length bytes and an optional Retry-After. Without I/O so that the fuzz target
// fuzz/activation_answer_fuzz.cc reaches it; `error` does not name the server.
HttpsResult ParseHttpsAnswer(std::string_view response);

class HttpsExchange {
 public:
  static constexpr size_t kMaxBody = 16384;
  using Done = std::function<void(HttpsResult result)>;

  HttpsExchange(EventLoop& loop, TransportFactory& factory, const GatewayTarget& target)
      : loop_(loop), factory_(factory), target_(target), connector_(loop) {}
  HttpsExchange(const HttpsExchange&) = delete;
  HttpsExchange& operator=(const HttpsExchange&) = delete;

  // `request` is the complete request (head and body). `done` is called once, from the loop,
  // last; it may destroy the exchange.
  void Start(std::string request, int64_t deadline_ms, Done done);

 private:
  void OnConnected(int fd, int error, const std::string& detail);
  void Step();
  void Finish(HttpsResult result);
  void Complete();

  enum class State { kIdle, kConnecting, kHandshake, kSending, kReading, kDone };
  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget target_;
  State state_ = State::kIdle;
  std::string request_;
  size_t sent_ = 0;
  std::string response_;
  Done done_;
  OutboundConnector connector_;
  Timer deadline_;
  std::unique_ptr<Transport> transport_;
  IoWatch watch_;  // after transport_
};

}  // namespace camtunnel::agent
