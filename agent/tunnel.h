// One reverse tunnel (PROTOCOL.md section 8): on OPEN, connect to the local service, open a data
// connection to the gateway (upgrade with the data proof), then relay bytes both ways.
//
// Phases: kConnectingService -> kDialingGateway -> kRelaying -> kDone. Bytes the camera sends
// before the gateway's 101 are buffered (up to the relay bound). The relay keeps at most
// kRelayBufferBytes per direction in memory and stops reading a source whose buffer is full, so
// a slow media server slows the camera instead of growing memory. A half-close (EOF) travels
// through (TLS close_notify + FIN toward the gateway, FIN toward the camera); the tunnel ends
// when both directions have ended, or at the first error, which resets both sides.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "agent/event_loop.h"
#include "agent/identity.h"
#include "agent/relay_buffer.h"
#include "agent/tcp_connector.h"
#include "agent/tls_transport.h"
#include "agent/upgrade_dialer.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

inline constexpr size_t kRelayBufferBytes = size_t{64} * 1024;

struct TunnelTimings {
  int64_t service_connect_deadline_ms = 5000;
  int64_t data_connect_deadline_ms = 5000;  // TCP + TLS + 101
};

class Tunnel {
 public:
  struct Callbacks {
    // The tunnel could not be set up: tell the gateway (OPEN_FAILED) at once.
    std::function<void(proto::TunnelId, int error, const std::string& text)> open_failed;
    // The tunnel has ended; called from the loop, last. The owner destroys it here.
    std::function<void(proto::TunnelId)> finished;
  };

  Tunnel(EventLoop& loop, TransportFactory& factory, const GatewayTarget& gateway,
         const AgentIdentity& identity, proto::TunnelId id, const proto::ServiceEntry& service,
         const proto::Nonce& open_nonce, Callbacks callbacks, TunnelTimings timings = {});
  ~Tunnel();
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  void Start();
  // The tunnel the gateway opened on a spare data connection (PROTOCOL.md 8.1): `gateway` is
  // that connection, `rest` what followed the OPEN frame. The service is connected as for
  // Start(); then OPENED goes first on the spare and the relay runs on it. If the service
  // cannot be reached, OPEN_FAILED goes on the spare (not on the control connection).
  void StartOnSpare(std::unique_ptr<Transport> gateway, std::span<const uint8_t> rest);
  // Resets both sides now (agent shutdown); `finished` is not called.
  void Abort();

  proto::TunnelId id() const { return id_; }

 private:
  enum class Phase { kIdle, kConnectingService, kDialingGateway, kRelaying, kDone };

  // One relay direction: bytes read from `src` wait in `buffer` until written to `dst`.
  struct Direction {
    Direction(const char* from, const char* to, size_t capacity)
        : src_name(from), dst_name(to), buffer(capacity) {}
    const char* src_name;  // for error messages
    const char* dst_name;
    Transport* src = nullptr;
    Transport* dst = nullptr;
    RelayBuffer buffer;
    bool src_eof = false;    // src ended its stream
    bool shut_down = false;  // and dst has been shut down for writing: direction finished
    uint64_t bytes = 0;      // written to dst
    IoStatus read_wait = IoStatus::kOk;
    IoStatus write_wait = IoStatus::kOk;
    // Moves what the sockets allow; false and *error on a fatal error. *progress if anything
    // moved.
    bool Step(bool* progress, std::string* error);
  };

  void OnServiceConnected(int fd, int error, const std::string& detail);
  void DialGateway();
  void OnGatewayDialed(const DialOutcome& outcome, std::unique_ptr<Transport> transport,
                       std::span<const uint8_t> leftover);
  void FailOpen(int error, const std::string& text);
  // Connects the relay to gateway_conn_: `leftover` is the media server's first bytes.
  void BeginRelay(std::span<const uint8_t> leftover);
  void Pump();
  void Finish(bool reset, const std::string& why);
  void ResetWhenDelivered();
  void CloseTransports(bool reset);

  // How long a tunnel ending in an error waits for its last bytes to be acknowledged.
  static constexpr int64_t kResetLingerMs = 2000;

  EventLoop& loop_;
  TransportFactory& factory_;
  GatewayTarget gateway_;
  const AgentIdentity& identity_;
  proto::TunnelId id_;
  std::string id_text_;
  proto::ServiceEntry service_;
  proto::Nonce open_nonce_;
  Callbacks callbacks_;
  TunnelTimings timings_;
  Phase phase_ = Phase::kIdle;
  bool on_spare_ = false;
  std::vector<uint8_t> spare_rest_;  // bytes that followed the OPEN on the spare
  int64_t reset_deadline_ms_ = 0;

  Direction up_{"camera", "gateway", kRelayBufferBytes};    // logged as bytes_out
  Direction down_{"gateway", "camera", kRelayBufferBytes};  // logged as bytes_in

  TcpConnector connector_;
  std::unique_ptr<UpgradeDialer> dialer_;
  Timer deadline_;
  Timer finished_timer_;
  std::unique_ptr<Transport> camera_;
  std::unique_ptr<Transport> gateway_conn_;
  IoWatch camera_watch_;  // after the transports: unwatched before their sockets close
  IoWatch gateway_watch_;
};

}  // namespace camtunnel::agent
