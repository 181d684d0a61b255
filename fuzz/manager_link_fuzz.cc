// Fuzzes what an agent parses from its manager (PROTOCOL.md section 10): the activation answer
// (proto/activation_message.h) and ASSIGN streamer fields (proto/manager_link.h). Checked:
// nothing crashes; an accepted activation answer has a canonical id and an https URL; an
// accepted streamer entry re-encodes (with its own seal nonce) to the same bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/activation_message.h"
#include "proto/identifiers.h"
#include "proto/manager_link.h"

namespace {

using namespace camtunnel::proto;

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto result = ParseActivationResult(text, &error)) {
    FUZZ_CHECK(IsCanonicalAgentId(result->agent_id));
    FUZZ_CHECK(result->manager_url.starts_with("https://"));
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
  return 0;
}
