// The one control-link state machine (PROTOCOL.md sections 4-7 and 10.2), for both ends of both
// kinds of link: an agent's control connection to a gateway and its link to a manager. It is
// sans-I/O: bytes come in through Receive(), frames and the 101 head go out through the
// handler's WriteLinkOutput(), and time moves only when the driver says so (Tick, and the `now`
// of each call). Drivers own the socket, the TLS session, the timers and everything a frame
// means to their program; the core owns what every link must do the same way:
//
//   - the proofs of the upgrade (the 101's server proof, HELLO's agent proof), checked in
//     constant time, and the plain-mode frame MACs of section 7 from HELLO/WELCOME on;
//   - the first-frame rule: HELLO first from the agent, WELCOME first from the server;
//   - WELCOME: sent by the server from its profile, applied by the agent within bounds;
//   - heartbeats (the one rule, below), PING/PONG and the round trip;
//   - the receive rules: oversized, malformed or wrongly MACed frames are ERROR and a close; an
//     ERROR from the peer ends the link; GOAWAY ends an agent's link; a frame type this end
//     does not take (unknown, or defined for the other direction) is answered UNSUPPORTED and
//     the link stays up; UNSUPPORTED itself is never answered;
//   - the output cap: a peer that lets more than LinkProfile::max_output bytes queue up is not
//     reading, and the link ends.
//
// The heartbeat rule: each end sends PING when it has sent nothing for one heartbeat interval,
// and declares the link dead, with ERROR code 6 (timeout), when it has received nothing for
// `heartbeat_misses` intervals (default 2). The interval is the server's, announced in WELCOME.
//
// The end of a link is reported once, through Handler::OnLinkEnded, as the last thing a call
// does. The handler must not destroy the link from inside that call (close the transport, free
// later): the core is still on the stack.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/control_frame.h"
#include "proto/crypto.h"
#include "proto/identifiers.h"

namespace camtunnel::proto {

enum class LinkRole : uint8_t {
  kAgent,   // dials, sends HELLO
  kServer,  // a gateway or a manager: answers 101, sends WELCOME
};

// Which link: it picks the proof and session-key labels and whether a key reference is proven.
enum class LinkKind : uint8_t {
  kGateway,  // sections 4-7, keyed with the agent's gateway key K
  kManager,  // section 10.2, keyed with the agent secret S
};

// WELCOME may tune the heartbeat within these bounds: below 100 ms a camera would spend its
// uplink on PINGs; above 10 minutes NAT mappings expire long before a dead link is noticed.
inline constexpr uint32_t kMinHeartbeatMs = 100;
inline constexpr uint32_t kMaxHeartbeatMs = 600000;
inline constexpr uint32_t kMaxReconnectWindowMs = 600000;
inline constexpr uint32_t kDefaultHeartbeatMs = 5000;

// How one program runs its links; shared by all links of a program (keep it alive).
struct LinkProfile {
  LinkRole role = LinkRole::kAgent;
  LinkKind kind = LinkKind::kGateway;
  uint32_t capabilities = 0;                    // ours: in HELLO (agent) or WELCOME (server)
  uint32_t heartbeat_ms = kDefaultHeartbeatMs;  // server: announced; agent: until WELCOME
  uint32_t heartbeat_misses = 2;                // silent intervals before the link is dead
  uint32_t reconnect_window_ms = 0;             // server: announced in WELCOME
  size_t max_output = size_t{64} * 1024;        // queued output beyond this: not reading
  std::string_view version;                     // agent: HELLO's version text
  // A manager: every manager of the deployment, announced in WELCOME (section 10.5).
  std::span<const std::string> managers;
};

// What the handshake proves: the agent id and its key (K for a gateway link, S for a manager
// link, both 32 bytes), and for a gateway link the key's reference.
struct LinkCredentials {
  std::string_view agent_id;
  const Digest* key = nullptr;
  const KeyRef* key_ref = nullptr;  // gateway links only
};

// WELCOME as applied: the heartbeat defaulted and clamped, the window capped.
struct LinkWelcome {
  uint32_t capabilities = 0;
  uint32_t heartbeat_ms = 0;
  uint64_t server_time_ms = 0;  // 0 when absent
  uint32_t reconnect_window_ms = 0;
  std::vector<std::string> managers;  // a manager's list (section 10.5), at most kMaxManagers
};

// At most this many manager URLs in WELCOME or an activation answer (section 10.5).
inline constexpr size_t kMaxManagers = 16;

enum class LinkEndReason : uint8_t {
  kClosedHere,  // Close() or GoAway(): this end chose to end it
  kPeerClosed,  // the driver saw the peer close the connection (PeerClosed)
  kTransport,   // the driver's transport failed (Abort)
  kPeerError,   // the peer sent ERROR (peer_code, detail holds its text)
  kGoaway,      // agent: the server sent GOAWAY (retry_after_ms, redirect)
  kProtocol,    // the peer broke the protocol; ERROR `sent_code` was sent
  kBadProof,    // a proof failed (agent: nothing sent; server: ERROR 1 sent)
  kTimeout,     // handshake or heartbeat deadline; ERROR 6 sent
  kNotReading,  // the output cap was reached
};
std::string_view LinkEndReasonName(LinkEndReason reason);

struct LinkEnd {
  LinkEndReason reason = LinkEndReason::kClosedHere;
  bool established = false;       // the link had been established
  std::optional<ErrorCode> sent;  // the ERROR code this end sent, if any
  uint16_t peer_code = 0;         // kPeerError: the peer's code
  std::string peer_text;          // kPeerError: ERROR's text; kGoaway: GOAWAY's reason
  int64_t retry_after_ms = -1;    // kGoaway: reconnect_after_ms
  std::string redirect;           // kGoaway: the redirect field, if any (untrusted)
  std::string detail;             // for logs
};

class ControlLink {
 public:
  class Handler {
   public:
    // Bytes to send, in order (the 101 head, then frames). The driver queues them.
    virtual void WriteLinkOutput(std::span<const uint8_t> bytes) = 0;
    // Bytes written through WriteLinkOutput that the peer has not taken yet.
    virtual size_t QueuedLinkOutput() const = 0;
    // Server: HELLO's proof verified. The handler reads its other fields and may Fail() the
    // link; otherwise WELCOME follows and then OnLinkEstablished.
    virtual void OnLinkHello(const Frame& /*hello*/) {}
    // Both ends: the link is up (server: WELCOME sent; agent: WELCOME received).
    virtual void OnLinkEstablished(const LinkWelcome& /*welcome*/) {}
    // A frame of a type this end takes (control_link.cc lists them per role and kind).
    virtual void OnLinkFrame(const Frame& frame) = 0;
    // A frame was answered UNSUPPORTED (for a counter).
    virtual void OnLinkUnsupported(uint8_t /*type*/) {}
    // A PING went out, a PING was answered, or a PONG came back (for counters).
    enum class Heartbeat : uint8_t { kPingSent, kPingAnswered, kPongReceived };
    virtual void OnLinkHeartbeat(Heartbeat /*what*/) {}
    // Once, last. Must not destroy the link (see the file comment).
    virtual void OnLinkEnded(const LinkEnd& end) = 0;

   protected:
    ~Handler() = default;
  };

  ControlLink(const LinkProfile& profile, Handler& handler);
  ~ControlLink();
  ControlLink(const ControlLink&) = delete;
  ControlLink& operator=(const ControlLink&) = delete;

  // A link is single-use, but the object may be started again once it has ended (or before it
  // ever started): AcceptUpgrade and BeginAgent begin a fresh link.
  //
  // Server: an upgrade for `credentials` (copied) arrived with the agent's nonce over
  // `transport` (exporter: 32 bytes with TLS, empty in plain mode). Writes the 101 with a fresh
  // server nonce and the server proof; HELLO is due by `hello_deadline_us`.
  void AcceptUpgrade(const LinkCredentials& credentials, const Nonce& agent_nonce,
                     Transport transport, std::span<const uint8_t> exporter, int64_t now_us,
                     int64_t hello_deadline_us);
  // Agent: the server answered 101 with its nonce and proof. Checks the proof (a wrong one ends
  // the link with kBadProof, and nothing is sent: a party without the key learns nothing it
  // could replay), then sends HELLO with our proof, capabilities, version and `services`.
  void BeginAgent(const LinkCredentials& credentials, const Nonce& agent_nonce,
                  const Nonce& server_nonce, const Digest& server_proof, Transport transport,
                  std::span<const uint8_t> exporter, std::span<const std::string> services,
                  int64_t now_us);

  // Bytes from the peer.
  void Receive(std::span<const uint8_t> bytes, int64_t now_us);
  // Runs the deadlines (HELLO, heartbeats). Returns when Tick is next due (absolute, in the
  // same clock as now_us), or -1 once the link has ended.
  int64_t Tick(int64_t now_us);
  // When Tick is next due, without running anything (-1 once ended).
  int64_t next_tick_us() const;

  // Sends a frame (sealed in plain mode). Dropped once the link has ended.
  void Send(FrameBuilder& frame, int64_t now_us);
  // Sends ERROR `code` and ends the link (kProtocol; kTimeout for ErrorCode::kTimeout).
  void Fail(ErrorCode code, std::string_view text, int64_t now_us);
  // Server: sends GOAWAY and ends the link (kClosedHere).
  void GoAway(std::string_view reason, uint32_t reconnect_after_ms, int64_t now_us);
  // Ends the link from this side, sending nothing more (kClosedHere).
  void Close(std::string_view detail);
  // The driver's transport saw the peer's close, or failed.
  void PeerClosed(std::string_view detail);
  void Abort(std::string_view detail);

  bool ended() const { return state_ == State::kEnded; }
  bool established() const { return state_ == State::kEstablished; }
  bool plain() const { return macs_ != nullptr; }
  uint32_t peer_capabilities() const { return peer_capabilities_; }
  uint32_t heartbeat_ms() const { return heartbeat_ms_; }
  // The last PING's round trip (0 until a PONG came back).
  uint64_t last_rtt_us() const { return last_rtt_us_; }

 private:
  enum class State : uint8_t { kIdle, kAwaitHello, kAwaitWelcome, kEstablished, kEnded };
  struct Handshake;  // what only the handshake needs, freed once the link is established
  struct PlainMacs;

  void Reset();
  void Handle(Frame& frame, int64_t now_us);
  void HandleHello(const Frame& frame, int64_t now_us);
  void HandleWelcome(const Frame& frame);
  bool HelloProofValid(const Frame& frame) const;
  void SendWelcome(int64_t now_us);
  void Emit(std::span<const uint8_t> bytes);
  void End(LinkEnd end);
  void SetUpMacs(const Digest& session_key);

  const LinkProfile& profile_;
  Handler& handler_;
  // Every idle agent on a gateway holds a link: fields are packed, and what only the handshake
  // needs (credentials, nonces, the HELLO deadline) lives in handshake_, freed once it is over.
  int64_t last_rx_us_ = 0;
  int64_t last_tx_us_ = 0;
  int64_t ping_sent_us_ = -1;  // -1: no PING outstanding
  uint32_t heartbeat_ms_ = 0;  // the profile's (server) or WELCOME's (agent)
  uint32_t peer_capabilities_ = 0;
  uint32_t ping_sequence_ = 0;  // of the last PING sent (680 years of 5 s heartbeats)
  uint32_t last_rtt_us_ = 0;
  State state_ = State::kIdle;
  FrameDecoder decoder_;
  std::unique_ptr<Handshake> handshake_;
  std::unique_ptr<PlainMacs> macs_;  // plain mode only
};

}  // namespace camtunnel::proto
