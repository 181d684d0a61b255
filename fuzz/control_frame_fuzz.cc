// Fuzzes the control frame decoder and validator (proto/control_frame.h). The first input byte
// picks a chunk size, the rest is a byte stream from a peer. Checked: decoding is independent of
// how the stream is split, no frame exceeds the cap, encode(decode(x)) == x for every frame whose
// fields fill its payload, copies are equivalent, seal -> decode -> open round trips, and command
// ids and ACKs read back.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "proto/control_frame.h"
#include "proto/manager_command.h"

namespace {

using namespace camtunnel::proto;

struct Decoded {
  std::vector<Frame> frames;
  DecodeStatus last = DecodeStatus::kNeedMore;
};

Decoded DecodeAll(std::span<const uint8_t> stream, size_t chunk) {
  Decoded out;
  FrameDecoder decoder;
  while (!stream.empty() && out.last != DecodeStatus::kTooLarge) {
    std::span<const uint8_t> in = stream.first(std::min(chunk, stream.size()));
    const size_t offered = in.size();
    while (true) {
      Frame frame;
      out.last = decoder.Decode(in, &frame);
      if (out.last != DecodeStatus::kFrame) {
        break;
      }
      out.frames.push_back(std::move(frame));
    }
    FUZZ_CHECK(out.last == DecodeStatus::kTooLarge || in.empty());
    stream = stream.subspan(offered - in.size());
  }
  return out;
}

bool SameFrame(const Frame& a, const Frame& b) {
  return a.type() == b.type() && a.Valid() == b.Valid() &&
         std::equal(a.payload().begin(), a.payload().end(), b.payload().begin(),
                    b.payload().end()) &&
         a.fields().size() == b.fields().size();
}

std::vector<uint8_t> Wire(const Frame& f) {
  const size_t n = f.payload().size();
  std::vector<uint8_t> out = {f.type(), static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                              static_cast<uint8_t>(n)};
  out.insert(out.end(), f.payload().begin(), f.payload().end());
  return out;
}

FrameBuilder Rebuild(const Frame& f) {
  FrameBuilder b(f.type());
  for (const Field& field : f.fields()) {
    b.Add(static_cast<Tag>(field.tag), field.value);
  }
  return b;
}

bool HasMac(const Frame& f) {
  for (const Field& field : f.fields()) {
    if (field.tag == static_cast<uint8_t>(Tag::kMac)) {
      return true;
    }
  }
  return false;
}

void CheckFrame(const Frame& frame) {
  FUZZ_CHECK(frame.payload().size() <= kMaxFramePayload);
  const bool fields_fill_payload = !frame.fields().empty() || frame.payload().empty();
  FUZZ_CHECK(!frame.Valid() || fields_fill_payload);

  Frame copy = frame;
  FUZZ_CHECK(SameFrame(copy, frame));

  if (!fields_fill_payload) {
    return;
  }
  // encode(decode(x)) == x.
  FUZZ_CHECK(Rebuild(frame).Finish() == Wire(frame));

  if (frame.Valid()) {
    // Fixed-width tags of a valid frame always read back.
    if (frame.Bytes(Tag::kSequence)) {
      FUZZ_CHECK(frame.U64(Tag::kSequence).has_value());
    }
    if (frame.Bytes(Tag::kHeartbeatMs)) {
      FUZZ_CHECK(frame.U32(Tag::kHeartbeatMs).has_value());
    }
    if (frame.Bytes(Tag::kErrorCode)) {
      FUZZ_CHECK(frame.U16(Tag::kErrorCode).has_value());
    }
    if (frame.Bytes(Tag::kFrameType)) {
      FUZZ_CHECK(frame.U8(Tag::kFrameType).has_value());
    }
    // Commands and their acknowledgements (PROTOCOL.md 10.6): a valid frame's command id is
    // never 0, an ACK that reads echoes it, and its rebuilt form reads back the same.
    if (frame.Bytes(Tag::kCommandId)) {
      FUZZ_CHECK(CommandIdOf(frame) != 0);
    }
    if (const auto ack = ParseAck(frame)) {
      FUZZ_CHECK(ack->command_id == CommandIdOf(frame));
      const std::vector<uint8_t> again = BuildAck(ack->command_id, ack->outcome).Finish();
      std::span<const uint8_t> in = again;
      FrameDecoder decoder;
      Frame rebuilt;
      FUZZ_CHECK(decoder.Decode(in, &rebuilt) == DecodeStatus::kFrame);
      const auto reread = ParseAck(rebuilt);
      FUZZ_CHECK(reread && reread->command_id == ack->command_id &&
                 reread->outcome == ack->outcome);
    }
    // OPEN and SPARE fields (what agents read, on control and spare connections): an OPEN
    // that reads is a SPARE that reads, with its service; the id reads back as its text.
    if (const auto open = ReadOpen(frame)) {
      FUZZ_CHECK(!open->service.empty() && ReadSpare(frame).has_value());
      FUZZ_CHECK(FormatTunnelId(open->tunnel) == open->tunnel_text);
    }
  }

  // Plain-mode MAC round trip: what a sealer sends, the matching opener accepts and strips.
  if (frame.payload().size() + 19 <= kMaxFramePayload) {
    Digest key{};
    key[0] = frame.type();
    FrameSealer sealer(key, Direction::kGatewayToAgent);
    FrameOpener opener(key, Direction::kGatewayToAgent);
    FrameBuilder builder = Rebuild(frame);
    std::vector<uint8_t> sealed = sealer.Seal(builder);
    std::span<const uint8_t> in = sealed;
    FrameDecoder decoder;
    Frame received;
    FUZZ_CHECK(decoder.Decode(in, &received) == DecodeStatus::kFrame && in.empty());
    const bool opened = opener.Open(received);
    // A frame that already carries a mac gets a second one on sealing: a misplaced mac.
    FUZZ_CHECK(opened == !HasMac(frame));
    if (opened) {
      FUZZ_CHECK(SameFrame(received, frame));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const size_t chunk = 1 + data[0] % 32;
  const std::span<const uint8_t> stream(data + 1, size - 1);

  const Decoded whole = DecodeAll(stream, stream.size() + 1);
  const Decoded split = DecodeAll(stream, chunk);
  FUZZ_CHECK(whole.last == split.last || stream.empty());
  FUZZ_CHECK(whole.frames.size() == split.frames.size());
  for (size_t i = 0; i < whole.frames.size(); ++i) {
    FUZZ_CHECK(SameFrame(whole.frames[i], split.frames[i]));
    CheckFrame(whole.frames[i]);
  }

  // A receiver's opener on raw input must not crash (forging a MAC is not the fuzzer's job).
  if (!whole.frames.empty()) {
    Frame first = whole.frames.front();
    FrameOpener opener(Digest{}, Direction::kAgentToGateway);
    opener.Open(first);
  }
  return 0;
}
