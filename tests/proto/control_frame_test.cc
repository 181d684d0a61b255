// Control frames (PROTOCOL.md sections 5 and 7): encoding, the bounded decoder, validation of
// the field table, and the plain-mode MAC against replay, reordering and reflection.
#include "proto/control_frame.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace camtunnel::proto {
namespace {

using Buf = std::vector<uint8_t>;

Frame Decode(const Buf& wire) {
  FrameDecoder decoder;
  std::span<const uint8_t> in = wire;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kFrame);
  EXPECT_TRUE(in.empty());
  return frame;
}

// A frame of `type` whose payload is exactly `payload` (fields written by hand).
Frame Raw(uint8_t type, Buf payload) { return Frame(type, std::move(payload)); }

// Sized up front: GCC 12 at -O3 misreports an insert after a brace-initialised vector
// (-Warray-bounds false positive).
Buf Field(uint8_t tag, const Buf& value) {
  Buf out(3 + value.size());
  out[0] = tag;
  out[1] = static_cast<uint8_t>(value.size() >> 8);
  out[2] = static_cast<uint8_t>(value.size());
  std::copy(value.begin(), value.end(), out.begin() + 3);
  return out;
}

Buf Field(uint8_t tag, std::string_view text) { return Field(tag, Buf(text.begin(), text.end())); }

Buf Join(std::initializer_list<Buf> parts) {
  Buf out;
  for (const Buf& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

TEST(FrameBuilderTest, EncodesHeaderAndFields) {
  Buf wire = FrameBuilder(FrameType::kPing).AddU64(Tag::kSequence, 0x0102030405060708).Finish();
  EXPECT_EQ(wire, (Buf{3, 0, 0, 11, 14, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(FrameBuilderTest, EncodesEmptyPayload) {
  EXPECT_EQ(FrameBuilder(FrameType::kRestart).Finish(), (Buf{19, 0, 0, 0}));
}

TEST(FrameBuilderTest, EncodesIntegersBigEndian) {
  Buf wire = FrameBuilder(FrameType::kError)
                 .AddU8(Tag::kFrameType, 0xab)
                 .AddU16(Tag::kErrorCode, 0x0102)
                 .AddU32(Tag::kErrno, 0x03040506)
                 .Finish();
  EXPECT_EQ(wire, (Buf{10, 0, 0, 16, 15, 0, 1, 0xab, 16, 0, 2, 1, 2, 11, 0, 4, 3, 4, 5, 6}));
}

TEST(FrameBuilderTest, PayloadExcludesHeader) {
  FrameBuilder b(FrameType::kStatus);
  b.AddText(Tag::kText, "ok");
  EXPECT_EQ(Buf(b.payload().begin(), b.payload().end()), (Buf{12, 0, 2, 'o', 'k'}));
}

TEST(FrameBuilderDeathTest, AbortsOnPayloadOverCap) {
  FrameBuilder b(FrameType::kStatus);
  b.Add(Tag::kText, Buf(kMaxFramePayload - 2, 'x'));  // 3 header bytes: one over the cap
  EXPECT_DEATH(b.Finish(), "kMaxFramePayload");
}

TEST(FrameDecoderTest, DecodesFrameFedOneByteAtATime) {
  Buf wire = FrameBuilder(FrameType::kStatus).AddText(Tag::kText, "hello").Finish();
  FrameDecoder decoder;
  Frame frame;
  for (size_t i = 0; i < wire.size(); ++i) {
    std::span<const uint8_t> in(&wire[i], 1);
    DecodeStatus s = decoder.Decode(in, &frame);
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(s, i + 1 == wire.size() ? DecodeStatus::kFrame : DecodeStatus::kNeedMore);
  }
  EXPECT_EQ(frame.Text(Tag::kText), "hello");
}

TEST(FrameDecoderTest, StopsAfterOneFrameAndLeavesTheRest) {
  Buf a = FrameBuilder(FrameType::kPing).AddU64(Tag::kSequence, 1).Finish();
  Buf b = FrameBuilder(FrameType::kPong).AddU64(Tag::kSequence, 1).Finish();
  Buf wire = Join({a, b});
  FrameDecoder decoder;
  std::span<const uint8_t> in = wire;
  Frame frame;
  ASSERT_EQ(decoder.Decode(in, &frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.type(), 3);
  EXPECT_EQ(in.size(), b.size());
  ASSERT_EQ(decoder.Decode(in, &frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.type(), 4);
  EXPECT_TRUE(in.empty());
}

TEST(FrameDecoderTest, NeedsMoreOnEmptyInput) {
  FrameDecoder decoder;
  std::span<const uint8_t> in;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kNeedMore);
}

TEST(FrameDecoderTest, DecoderRejectsOversizedLengthBeforeAllocating) {
  // Only the header arrives: the verdict must not wait for (or reserve) the announced 16 MiB.
  Buf header = {1, 0xff, 0xff, 0xff};
  FrameDecoder decoder;
  std::span<const uint8_t> in = header;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kTooLarge);
}

TEST(FrameDecoderTest, RejectsLengthOneOverCap) {
  Buf header = {1, 0, 0x40, 0x01};  // 16385
  FrameDecoder decoder;
  std::span<const uint8_t> in = header;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kTooLarge);
}

TEST(FrameDecoderTest, AcceptsPayloadExactlyAtCap) {
  Buf wire = FrameBuilder(FrameType::kStatus).Add(Tag(200), Buf(kMaxFramePayload - 3, 0)).Finish();
  Frame frame = Decode(wire);
  EXPECT_EQ(frame.payload().size(), kMaxFramePayload);
  EXPECT_TRUE(frame.Valid());
}

TEST(FrameDecoderTest, TooLargeIsSticky) {
  Buf wire = {1, 0xff, 0xff, 0xff, 3, 0, 0, 0};
  FrameDecoder decoder;
  std::span<const uint8_t> in = wire;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kTooLarge);
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kTooLarge);
}

TEST(FrameDecoderTest, HonoursSmallerCap) {
  Buf wire = FrameBuilder(FrameType::kStatus).AddText(Tag::kText, "0123456789").Finish();
  FrameDecoder decoder(8);
  std::span<const uint8_t> in = wire;
  Frame frame;
  EXPECT_EQ(decoder.Decode(in, &frame), DecodeStatus::kTooLarge);
}

TEST(FrameDecoderTest, DecodesMalformedFrameAsInvalid) {
  Buf wire = {5, 0, 0, 2, 12, 0};  // a field header cut short
  Frame frame = Decode(wire);
  EXPECT_FALSE(frame.Valid());
}

TEST(FrameTest, RoundTripsHello) {
  Digest proof{};
  proof[0] = 9;
  Buf wire = FrameBuilder(FrameType::kHello)
                 .Add(Tag::kProof, proof)
                 .AddU32(Tag::kCapabilities, kCapPlainFrameMac | kCapOpenFailedErrno)
                 .AddText(Tag::kVersion, "camtunnel-agent/0.1.0")
                 .AddText(Tag::kService, "rtsp=127.0.0.1:554")
                 .AddText(Tag::kService, "http=127.0.0.1:80")
                 .Finish();
  Frame frame = Decode(wire);
  ASSERT_TRUE(frame.Valid());
  EXPECT_EQ(frame.type(), static_cast<uint8_t>(FrameType::kHello));
  auto got = frame.Bytes(Tag::kProof);
  ASSERT_TRUE(got);
  EXPECT_TRUE(std::equal(got->begin(), got->end(), proof.begin(), proof.end()));
  EXPECT_EQ(frame.U32(Tag::kCapabilities), 3u);
  EXPECT_EQ(frame.Text(Tag::kVersion), "camtunnel-agent/0.1.0");
  EXPECT_EQ(frame.AllText(Tag::kService),
            (std::vector<std::string_view>{"rtsp=127.0.0.1:554", "http=127.0.0.1:80"}));
}

TEST(FrameTest, RoundTripsWelcome) {
  Frame frame = Decode(FrameBuilder(FrameType::kWelcome)
                           .AddU32(Tag::kCapabilities, 1)
                           .AddU32(Tag::kHeartbeatMs, 5000)
                           .AddU64(Tag::kServerTimeMs, 1767225600123)
                           .AddU32(Tag::kReconnectWindowMs, 30000)
                           .Finish());
  ASSERT_TRUE(frame.Valid());
  EXPECT_EQ(frame.U32(Tag::kHeartbeatMs), 5000u);
  EXPECT_EQ(frame.U64(Tag::kServerTimeMs), 1767225600123u);
  EXPECT_EQ(frame.U32(Tag::kReconnectWindowMs), 30000u);
}

TEST(FrameTest, RoundTripsOpen) {
  Nonce nonce{};
  nonce[15] = 1;
  Frame frame = Decode(FrameBuilder(FrameType::kOpen)
                           .AddText(Tag::kTunnelId, "00a3f09c11d2e4b7")
                           .AddText(Tag::kServiceName, "rtsp")
                           .Add(Tag::kNonce, nonce)
                           .Finish());
  ASSERT_TRUE(frame.Valid());
  EXPECT_EQ(frame.Text(Tag::kTunnelId), "00a3f09c11d2e4b7");
  EXPECT_EQ(frame.Text(Tag::kServiceName), "rtsp");
  EXPECT_EQ(frame.Bytes(Tag::kNonce)->size(), kNonceBytes);
}

TEST(FrameTest, RoundTripsOpenFailedGoawayUnsupportedAndError) {
  Frame open_failed = Decode(FrameBuilder(FrameType::kOpenFailed)
                                 .AddText(Tag::kTunnelId, "0000000000000001")
                                 .AddU32(Tag::kErrno, 111)
                                 .AddText(Tag::kText, "connection refused")
                                 .Finish());
  EXPECT_TRUE(open_failed.Valid());
  EXPECT_EQ(open_failed.U32(Tag::kErrno), 111u);
  Frame goaway = Decode(FrameBuilder(FrameType::kGoaway)
                            .AddU32(Tag::kReconnectAfterMs, 1000)
                            .AddText(Tag::kText, "replaced")
                            .AddText(Tag::kRedirect, "https://streamer-2.example.com")
                            .Finish());
  EXPECT_TRUE(goaway.Valid());
  EXPECT_EQ(goaway.Text(Tag::kRedirect), "https://streamer-2.example.com");
  Frame unsupported =
      Decode(FrameBuilder(FrameType::kUnsupported).AddU8(Tag::kFrameType, 42).Finish());
  EXPECT_TRUE(unsupported.Valid());
  EXPECT_EQ(unsupported.U8(Tag::kFrameType), 42);
  Frame error = Decode(FrameBuilder(FrameType::kError)
                           .AddU16(Tag::kErrorCode, static_cast<uint16_t>(ErrorCode::kBadProof))
                           .AddText(Tag::kText, "bad proof")
                           .Finish());
  EXPECT_TRUE(error.Valid());
  EXPECT_EQ(error.U16(Tag::kErrorCode), 1);
}

TEST(FrameTest, EmptyPayloadIsValid) { EXPECT_TRUE(Raw(3, {}).Valid()); }

TEST(FrameTest, RejectsFieldRunningPastEnd) {
  Frame frame = Raw(5, {12, 0, 5, 'a', 'b'});
  EXPECT_FALSE(frame.Valid());
  EXPECT_TRUE(frame.fields().empty());
  EXPECT_FALSE(frame.Text(Tag::kText));
}

TEST(FrameTest, RejectsTruncatedFieldHeader) { EXPECT_FALSE(Raw(5, {12, 0}).Valid()); }

TEST(FrameTest, SkipsUnknownTags) {
  Frame frame = Raw(3, Join({Field(99, "future"), Field(14, Buf(8, 0)), Field(99, "again")}));
  EXPECT_TRUE(frame.Valid());
  EXPECT_EQ(frame.U64(Tag::kSequence), 0u);
  EXPECT_EQ(frame.fields().size(), 3u);
}

TEST(FrameTest, RejectsKnownTagWithWrongWidth) {
  struct Case {
    Tag tag;
    size_t width;
  };
  const Case cases[] = {
      {Tag::kProof, 32},       {Tag::kCapabilities, 4},      {Tag::kHeartbeatMs, 4},
      {Tag::kServerTimeMs, 8}, {Tag::kReconnectWindowMs, 4}, {Tag::kNonce, 16},
      {Tag::kErrno, 4},        {Tag::kReconnectAfterMs, 4},  {Tag::kSequence, 8},
      {Tag::kFrameType, 1},    {Tag::kErrorCode, 2},         {Tag::kMac, 16}};
  for (const Case& c : cases) {
    const auto tag = static_cast<uint8_t>(c.tag);
    EXPECT_TRUE(Raw(1, Field(tag, Buf(c.width, 0))).Valid()) << int{tag};
    EXPECT_FALSE(Raw(1, Field(tag, Buf(c.width - 1, 0))).Valid()) << int{tag};
    EXPECT_FALSE(Raw(1, Field(tag, Buf(c.width + 1, 0))).Valid()) << int{tag};
  }
}

TEST(FrameTest, RejectsRepeatedNonRepeatableTag) {
  EXPECT_FALSE(Raw(3, Join({Field(14, Buf(8, 0)), Field(14, Buf(8, 1))})).Valid());
  EXPECT_FALSE(Raw(5, Join({Field(12, "a"), Field(12, "b")})).Valid());
}

TEST(FrameTest, AcceptsRepeatedService) {
  EXPECT_TRUE(
      Raw(1, Join({Field(4, "rtsp=127.0.0.1:554"), Field(4, "http=127.0.0.1:80")})).Valid());
}

TEST(FrameTest, RejectsMalformedServiceEntry) {
  EXPECT_FALSE(Raw(1, Field(4, "rtsp=127.0.0.1")).Valid());
  EXPECT_FALSE(Raw(1, Field(4, "RTSP=127.0.0.1:554")).Valid());
}

TEST(FrameTest, AcceptsVersionOfSixtyFourBytes) {
  EXPECT_TRUE(Raw(1, Field(3, std::string(64, 'v'))).Valid());
}

TEST(FrameTest, RejectsVersionOverSixtyFourBytes) {
  EXPECT_FALSE(Raw(1, Field(3, std::string(65, 'v'))).Valid());
}

TEST(FrameTest, AcceptsTextOf4096Bytes) {
  EXPECT_TRUE(Raw(5, Field(12, std::string(kMaxStatusText, 't'))).Valid());
}

TEST(FrameTest, RejectsTextOver4096Bytes) {
  EXPECT_FALSE(Raw(5, Field(12, std::string(kMaxStatusText + 1, 't'))).Valid());
}

TEST(FrameTest, AcceptsUtf8Text) { EXPECT_TRUE(Raw(5, Field(12, "caméra 📷")).Valid()); }

TEST(FrameTest, RejectsInvalidUtf8Text) {
  EXPECT_FALSE(Raw(5, Field(12, Buf{'a', 0xff})).Valid());
  EXPECT_FALSE(Raw(5, Field(12, Buf{0xc0, 0xaf})).Valid());        // overlong '/'
  EXPECT_FALSE(Raw(5, Field(12, Buf{0xed, 0xa0, 0x80})).Valid());  // surrogate
  EXPECT_FALSE(Raw(5, Field(12, Buf{0xe2, 0x82})).Valid());        // truncated
}

TEST(FrameTest, RejectsInvalidServiceName) {
  EXPECT_TRUE(Raw(6, Field(9, "rtsp")).Valid());
  EXPECT_FALSE(Raw(6, Field(9, "")).Valid());
  EXPECT_FALSE(Raw(6, Field(9, "Rtsp")).Valid());
  EXPECT_FALSE(Raw(6, Field(9, std::string(33, 'r'))).Valid());
}

TEST(FrameTest, RejectsUppercaseOrShortTunnelId) {
  EXPECT_FALSE(Raw(6, Field(8, "00A3F09C11D2E4B7")).Valid());
  EXPECT_FALSE(Raw(6, Field(8, "00a3f09c11d2e4b")).Valid());
}

TEST(FrameTest, AccessorReturnsNulloptForMissingTag) {
  Frame frame = Raw(3, Field(14, Buf(8, 0)));
  EXPECT_FALSE(frame.U32(Tag::kHeartbeatMs));
  EXPECT_FALSE(frame.Bytes(Tag::kProof));
  EXPECT_TRUE(frame.AllText(Tag::kService).empty());
}

TEST(FrameTest, AccessorReturnsNulloptForWrongWidth) {
  Frame frame = Raw(2, Field(5, Buf(3, 0)));
  EXPECT_FALSE(frame.Valid());
  EXPECT_FALSE(frame.U32(Tag::kHeartbeatMs));
  EXPECT_FALSE(frame.U64(Tag::kHeartbeatMs));
}

TEST(FrameTest, AccessorReturnsFirstOccurrence) {
  Frame frame = Raw(1, Join({Field(4, "a=h:1"), Field(4, "b=h:2")}));
  EXPECT_EQ(frame.Text(Tag::kService), "a=h:1");
}

TEST(FrameTest, CopyViewsItsOwnPayload) {
  auto original = std::make_unique<Frame>(Raw(5, Field(12, "status")));
  Frame copy = *original;
  Frame assigned;
  assigned = *original;
  original.reset();  // the copies must not point into the freed payload
  EXPECT_EQ(copy.Text(Tag::kText), "status");
  EXPECT_EQ(assigned.Text(Tag::kText), "status");
  EXPECT_TRUE(copy.Valid());
}

TEST(FrameTest, MoveKeepsFields) {
  Frame a = Raw(5, Field(12, "status"));
  Frame b = std::move(a);
  EXPECT_EQ(b.Text(Tag::kText), "status");
}

TEST(FrameTypeNameTest, NamesKnownTypes) {
  EXPECT_EQ(FrameTypeName(1), "HELLO");
  EXPECT_EQ(FrameTypeName(7), "OPEN_FAILED");
  EXPECT_EQ(FrameTypeName(10), "ERROR");
  EXPECT_EQ(FrameTypeName(19), "RESTART");
}

TEST(TunnelFieldsTest, ReadsOpenAndSpareAndRefusesWhatIsMissingOrMalformed) {
  const Buf nonce(16, 0xd0);
  const Buf id_field = Field(8, "00a3f09c11d2e4b7");
  const Frame open = Raw(6, Join({id_field, Field(9, "rtsp"), Field(10, nonce)}));
  const auto o = ReadOpen(open);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->tunnel, 0x00a3f09c11d2e4b7u);
  EXPECT_EQ(o->tunnel_text, "00a3f09c11d2e4b7");
  EXPECT_EQ(o->service, "rtsp");
  EXPECT_EQ(Buf(o->nonce.begin(), o->nonce.end()), nonce);
  const Frame spare = Raw(11, Join({id_field, Field(10, nonce)}));
  ASSERT_TRUE(ReadSpare(spare).has_value());
  EXPECT_TRUE(ReadSpare(spare)->service.empty());
  EXPECT_FALSE(ReadOpen(spare).has_value());  // OPEN needs its service
  EXPECT_FALSE(ReadSpare(Raw(11, Join({id_field, Field(10, Buf(15, 1))}))).has_value());
  EXPECT_FALSE(ReadSpare(Raw(11, Join({Field(8, "00A3F09C11D2E4B7"), Field(10, nonce)}))));
  EXPECT_FALSE(ReadSpare(Raw(11, Field(10, nonce))).has_value());
}

TEST(FrameTypeNameTest, NamesUnknownTypes) {
  EXPECT_EQ(FrameTypeName(0), "UNKNOWN");
  EXPECT_EQ(FrameTypeName(13), "UNKNOWN");
  EXPECT_EQ(FrameTypeName(11), "SPARE");
  EXPECT_EQ(FrameTypeName(12), "OPENED");
  EXPECT_EQ(FrameTypeName(255), "UNKNOWN");
}

// Plain-mode MAC (section 7).
class FrameMacSealTest : public ::testing::Test {
 protected:
  Buf SealPing(FrameSealer& sealer, uint64_t seq) {
    FrameBuilder b(FrameType::kPing);
    b.AddU64(Tag::kSequence, seq);
    return sealer.Seal(b);
  }

  static Digest TestKey() {
    Digest key;
    key.fill(0x42);
    return key;
  }

  Digest key_ = TestKey();  // declared before the sealer and opener that copy it
  FrameSealer sealer_{key_, Direction::kAgentToGateway};
  FrameOpener opener_{key_, Direction::kAgentToGateway};
};

TEST_F(FrameMacSealTest, SealerAppendsMacAsLastField) {
  Frame frame = Decode(SealPing(sealer_, 7));
  ASSERT_TRUE(frame.Valid());
  ASSERT_EQ(frame.fields().size(), 2u);
  EXPECT_EQ(frame.fields().back().tag, 255);
  EXPECT_EQ(frame.fields().back().value.size(), 16u);
}

TEST_F(FrameMacSealTest, SealerMacMatchesFrameMacOfPayloadWithSequenceZero) {
  Frame frame = Decode(SealPing(sealer_, 7));
  Buf body(frame.payload().begin(), frame.payload().end() - 19);
  FrameMacBytes expected = FrameMac(key_, Direction::kAgentToGateway, 0, 3, body);
  auto mac = frame.Bytes(Tag::kMac);
  EXPECT_TRUE(std::equal(mac->begin(), mac->end(), expected.begin(), expected.end()));
}

TEST_F(FrameMacSealTest, SealerIncrementsSequencePerFrame) {
  EXPECT_NE(SealPing(sealer_, 1), SealPing(sealer_, 1));
}

TEST_F(FrameMacSealTest, OpenerAcceptsSealedFramesInOrderAndStripsMac) {
  for (uint64_t i = 0; i < 3; ++i) {
    Frame frame = Decode(SealPing(sealer_, i));
    ASSERT_TRUE(opener_.Open(frame));
    EXPECT_TRUE(frame.Valid());
    EXPECT_FALSE(frame.Bytes(Tag::kMac));
    EXPECT_EQ(frame.payload().size(), 11u);
    EXPECT_EQ(frame.U64(Tag::kSequence), i);
  }
}

TEST_F(FrameMacSealTest, OpenerRejectsMissingMac) {
  Frame frame = Decode(FrameBuilder(FrameType::kPing).AddU64(Tag::kSequence, 0).Finish());
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsWrongMac) {
  Buf wire = SealPing(sealer_, 0);
  wire.back() ^= 1;
  Frame frame = Decode(wire);
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsTamperedPayload) {
  Buf wire = SealPing(sealer_, 0);
  wire[7] ^= 1;  // inside the sequence value
  Frame frame = Decode(wire);
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsChangedType) {
  Buf wire = SealPing(sealer_, 0);
  wire[0] = static_cast<uint8_t>(FrameType::kPong);
  Frame frame = Decode(wire);
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsMacNotLast) {
  FrameBuilder b(FrameType::kPing);
  Buf wire = sealer_.Seal(b.AddU64(Tag::kSequence, 0));
  // Move the sequence field behind the mac: same fields, mac misplaced.
  Buf payload(wire.begin() + 4, wire.end());
  Buf moved =
      Join({Buf(payload.begin() + 11, payload.end()), Buf(payload.begin(), payload.begin() + 11)});
  Frame frame = Raw(3, moved);
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsSecondMacField) {
  Buf wire = SealPing(sealer_, 0);
  Buf payload = Join({Field(255, Buf(16, 0)), Buf(wire.begin() + 4, wire.end())});
  Frame frame = Raw(3, payload);
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsReplayedFrame) {
  Buf first = SealPing(sealer_, 0);
  Frame frame = Decode(first);
  ASSERT_TRUE(opener_.Open(frame));
  Frame replay = Decode(first);
  EXPECT_FALSE(opener_.Open(replay));
}

TEST_F(FrameMacSealTest, OpenerRejectsDroppedFrame) {
  SealPing(sealer_, 0);  // never delivered
  Frame frame = Decode(SealPing(sealer_, 1));
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsReorderedFrames) {
  Buf first = SealPing(sealer_, 0);
  Buf second = SealPing(sealer_, 1);
  Frame frame = Decode(second);
  EXPECT_FALSE(opener_.Open(frame));
  Frame late = Decode(first);
  EXPECT_TRUE(opener_.Open(late));  // the stream is intact once the order is restored
}

TEST_F(FrameMacSealTest, OpenerRejectsReflectedFrame) {
  // A gateway's own frame sent back to it: same key, same sequence, other direction.
  FrameSealer gateway_sealer(key_, Direction::kGatewayToAgent);
  FrameOpener gateway_opener(key_, Direction::kAgentToGateway);
  Frame frame = Decode(SealPing(gateway_sealer, 0));
  EXPECT_FALSE(gateway_opener.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsOtherSessionKey) {
  Digest other = key_;
  other[0] ^= 1;
  FrameOpener opener(other, Direction::kAgentToGateway);
  Frame frame = Decode(SealPing(sealer_, 0));
  EXPECT_FALSE(opener.Open(frame));
}

TEST_F(FrameMacSealTest, OpenerRejectsStructurallyBrokenFrame) {
  Frame frame = Raw(3, {255, 0, 16, 1, 2});
  EXPECT_FALSE(opener_.Open(frame));
}

TEST_F(FrameMacSealTest, FailedOpenDoesNotAdvanceSequence) {
  Buf good = SealPing(sealer_, 0);
  Buf bad = good;
  bad.back() ^= 1;
  Frame bad_frame = Decode(bad);
  EXPECT_FALSE(opener_.Open(bad_frame));
  Frame good_frame = Decode(good);
  EXPECT_TRUE(opener_.Open(good_frame));
}

}  // namespace
}  // namespace camtunnel::proto
