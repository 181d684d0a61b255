// Fuzzes the control-link core (proto/control_link.h) with a hostile peer. The first input byte
// picks the setup: which end receives the bytes (agent or server), which link (gateway or
// manager), whether the two ends first establish the link in memory over TLS (so the bytes
// arrive as frames of a live link) or the bytes arrive right after the upgrade, and how the
// stream is split. Checked: the end is reported at most once and nothing happens after it; only
// valid frames of a type this end takes reach the handler; no proof is ever accepted from bytes
// that do not hold the key; queued output stays within the cap plus one frame.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "proto/control_link.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"

namespace {

using namespace camtunnel::proto;

class Peer final : public ControlLink::Handler {
 public:
  void WriteLinkOutput(std::span<const uint8_t> bytes) override {
    FUZZ_CHECK(ends == 0);
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  size_t QueuedLinkOutput() const override { return out.size(); }
  void OnLinkHello(const Frame& hello) override {
    FUZZ_CHECK(ends == 0 && hello.Valid());
    ++hellos;
  }
  void OnLinkEstablished(const LinkWelcome& welcome) override {
    FUZZ_CHECK(ends == 0);
    FUZZ_CHECK(welcome.heartbeat_ms >= kMinHeartbeatMs && welcome.heartbeat_ms <= kMaxHeartbeatMs);
    ++established;
  }
  void OnLinkFrame(const Frame& frame) override {
    FUZZ_CHECK(ends == 0 && frame.Valid());
    taken.push_back(frame.type());
  }
  void OnLinkEnded(const LinkEnd& /*end*/) override { ++ends; }

  std::vector<uint8_t> out;
  int hellos = 0;
  int established = 0;
  int ends = 0;
  std::vector<uint8_t> taken;
};

bool AgentTakes(LinkKind kind, uint8_t type) {
  const auto t = static_cast<FrameType>(type);
  if (kind == LinkKind::kGateway) {
    return t == FrameType::kOpen || t == FrameType::kSpare;
  }
  return t == FrameType::kAssign || t == FrameType::kSwitch || t == FrameType::kDeactivate ||
         t == FrameType::kRestart;
}

bool ServerTakes(LinkKind kind, uint8_t type) {
  const auto t = static_cast<FrameType>(type);
  return t == FrameType::kStatus || (kind == LinkKind::kGateway && t == FrameType::kOpenFailed) ||
         (kind == LinkKind::kManager && t == FrameType::kAck);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t mode = data[0];
  const bool fuzz_server = (mode & 1) != 0;
  const LinkKind kind = (mode & 2) != 0 ? LinkKind::kManager : LinkKind::kGateway;
  const bool establish = (mode & 4) != 0;
  const size_t chunk = 1 + (mode >> 3) * 61;
  std::span<const uint8_t> stream(data + 1, size - 1);

  Digest key{};
  key.fill(0x42);
  const KeyRef key_ref{.key_id = "k1", .expiry = 4102444800};
  const LinkCredentials credentials{
      .agent_id = "cam-1", .key = &key, .key_ref = kind == LinkKind::kGateway ? &key_ref : nullptr};
  const LinkProfile agent_profile{.role = LinkRole::kAgent, .kind = kind, .version = "fuzz/1"};
  const LinkProfile server_profile{.role = LinkRole::kServer, .kind = kind};
  Peer agent;
  Peer server;
  ControlLink agent_link(agent_profile, agent);
  ControlLink server_link(server_profile, server);
  Nonce agent_nonce{};
  agent_nonce.fill(0x05);
  const std::vector<uint8_t> exporter(kExporterBytes, 0x17);
  const int64_t now = 1000000;

  server_link.AcceptUpgrade(credentials, agent_nonce, Transport::kTls, exporter, now,
                            now + 5000000);
  const std::string head_text(server.out.begin(), server.out.end());
  server.out.clear();
  ResponseHead head;
  FUZZ_CHECK(ParseResponseHead(head_text, &head) == HeadResult::kComplete);
  const std::optional<ControlAccept> accept = ParseControlAccept(head);
  FUZZ_CHECK(accept.has_value());
  agent_link.BeginAgent(credentials, agent_nonce, accept->gateway_nonce, accept->gateway_proof,
                        Transport::kTls, exporter, {}, now);
  FUZZ_CHECK(agent.ends == 0);
  if (establish) {
    server_link.Receive(agent.out, now);
    agent.out.clear();
    agent_link.Receive(server.out, now);
    server.out.clear();
    FUZZ_CHECK(agent_link.established() && server_link.established());
  }

  ControlLink& target = fuzz_server ? server_link : agent_link;
  Peer& peer = fuzz_server ? server : agent;
  const int hellos_before = peer.hellos;
  const int established_before = peer.established;
  const LinkProfile& profile = fuzz_server ? server_profile : agent_profile;
  int64_t t = now;
  while (!stream.empty()) {
    const size_t n = std::min(chunk, stream.size());
    target.Receive(stream.first(n), t);
    stream = stream.subspan(n);
    t += 1000;
    target.Tick(t);
    FUZZ_CHECK(peer.out.size() <= profile.max_output + kFrameHeaderBytes + kMaxFramePayload);
  }
  FUZZ_CHECK(peer.ends <= 1);
  FUZZ_CHECK(peer.ends == 1 || !target.ended());
  // The fuzzer's bytes never hold the key: no HELLO of theirs verifies, and an agent that got
  // no WELCOME before is established only by a WELCOME (which needs no proof).
  FUZZ_CHECK(peer.hellos == hellos_before);
  FUZZ_CHECK(fuzz_server ? peer.established == established_before : peer.established <= 1);
  for (uint8_t type : peer.taken) {
    FUZZ_CHECK(fuzz_server ? ServerTakes(kind, type) : AgentTakes(kind, type));
  }
  return 0;
}
