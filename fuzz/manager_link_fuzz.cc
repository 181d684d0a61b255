// Fuzzes what an agent parses from its manager (PROTOCOL.md section 10): the activation answer
// (proto/activation_message.h), ASSIGN streamer fields (proto/manager_link.h) and the frames of
// a plain manager link (section 10.2). Checked: nothing crashes; an accepted activation answer
// has a canonical id and an https URL (TLS manager link), an http one (plain link) or none with
// the reason; an accepted streamer entry re-encodes (with its own seal nonce) to the same bytes;
// on a plain link the agent opens exactly what the manager sealed, once, and then parses it as
// ManagerSession does.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "proto/activation_message.h"
#include "proto/control_frame.h"
#include "proto/identifiers.h"
#include "proto/manager_link.h"

namespace {

using namespace camtunnel::proto;

// A mac field on the wire: tag, 16-bit length, the 16-byte mac (PROTOCOL.md section 7).
constexpr size_t kMacFieldBytes = 3 + sizeof(FrameMacBytes);

bool HasMac(const Frame& f) {
  return std::any_of(f.fields().begin(), f.fields().end(), [](const Field& field) {
    return field.tag == static_cast<uint8_t>(Tag::kMac);
  });
}

// The input as a stream of frames from a plain-link manager. A MAC cannot be forged by the
// fuzzer, so each frame is sealed here as the manager would seal it; the agent's opener must
// accept it (unless it already holds a mac field: a misplaced one), refuse it replayed, and
// the opened frame goes where ManagerSession::HandleFrame sends it.
void CheckPlainLink(std::span<const uint8_t> stream, const AgentSecret& secret,
                    const Digest& seal) {
  const Nonce agent_nonce{}, manager_nonce{};
  const Digest key = ManagerSessionKey(secret, agent_nonce, manager_nonce);
  FrameSealer manager(key, Direction::kGatewayToAgent);
  FrameOpener agent(key, Direction::kGatewayToAgent);
  FrameDecoder decoder;
  Frame frame;
  for (int n = 0; n < 16 && decoder.Decode(stream, &frame) == DecodeStatus::kFrame; ++n) {
    const bool rebuildable = !frame.fields().empty() || frame.payload().empty();
    if (!rebuildable || frame.payload().size() + kMacFieldBytes > kMaxFramePayload) {
      continue;
    }
    FrameBuilder builder(frame.type());
    for (const Field& field : frame.fields()) {
      builder.Add(static_cast<Tag>(field.tag), field.value);
    }
    const std::vector<uint8_t> sealed = manager.Seal(builder);
    std::span<const uint8_t> in = sealed;
    FrameDecoder agent_decoder;
    Frame received;
    FUZZ_CHECK(agent_decoder.Decode(in, &received) == DecodeStatus::kFrame && in.empty());
    Frame replayed = received;
    const bool opened = agent.Open(received);
    FUZZ_CHECK(opened == !HasMac(frame));
    if (!opened) {
      return;  // the agent ends the link on a bad MAC
    }
    FrameOpener again = agent;
    FUZZ_CHECK(!again.Open(replayed));
    FUZZ_CHECK(received.Valid() == frame.Valid());
    if (!received.Valid()) {
      return;
    }
    if (received.type() == static_cast<uint8_t>(FrameType::kAssign)) {
      std::string error;
      if (auto list = ParseAssign(seal, "cam-1", received, &error)) {
        FUZZ_CHECK(!list->empty() && list->size() <= kMaxAssignedStreamers);
        for (const AssignedStreamer& streamer : *list) {
          FUZZ_CHECK(IsValidStreamerUrl(streamer.url));
        }
      } else {
        FUZZ_CHECK(!error.empty());
      }
    } else if (received.type() == static_cast<uint8_t>(FrameType::kSwitch)) {
      (void)IsValidStreamerUrl(received.Text(Tag::kRedirect).value_or(""));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto result = ParseActivationResult(text, &error)) {
    FUZZ_CHECK(IsCanonicalAgentId(result->agent_id));
    FUZZ_CHECK(result->manager_url.starts_with("https://") ||
               result->manager_url.starts_with("http://") ||
               (result->manager_url.empty() && !result->manager_url_problem.empty()));
  }
  // A forged entry only opens under the right key; the zero key and a fixed id let the fuzzer
  // reach the structural checks (and, with the seed, a real seal).
  const AgentSecret secret{};
  const Digest seal = KeySealKey(secret, "cam-1");
  StreamerFieldParse parsed = DecodeAssignedStreamer(seal, "cam-1", {data, size});
  if (parsed.streamer) {
    FUZZ_CHECK(IsValidStreamerUrl(parsed.streamer->url));
    const std::span<const uint8_t> whole(data, size);
    const std::span<const uint8_t> nonce = whole.subspan(size - kSealedKeyBytes, kSealNonceBytes);
    const std::vector<uint8_t> again =
        EncodeAssignedStreamer(seal, "cam-1", *parsed.streamer, nonce);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), whole.begin(), whole.end()));
  }
  CheckPlainLink({data, size}, secret, seal);
  return 0;
}
