// Control frames (PROTOCOL.md section 5): type:u8 | length:u24 | payload, payload a list of
// tag:u8 | len:u16 | value fields. Encoder, bounded decoder, field accessors, and the plain-mode
// MAC seal/open (section 7).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/crypto.h"

namespace camtunnel::proto {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr size_t kMaxFramePayload = 16384;
inline constexpr size_t kMaxStatusText = 4096;

enum class FrameType : uint8_t {
  kHello = 1,
  kWelcome = 2,
  kPing = 3,
  kPong = 4,
  kStatus = 5,
  kOpen = 6,
  kOpenFailed = 7,
  kGoaway = 8,
  kUnsupported = 9,
  kError = 10,
  kSpare = 11,   // section 8.1: open a spare data connection for this tunnel id
  kOpened = 12,  // on a spare: the service is connected, raw bytes follow
  kAssign = 16,
  kSwitch = 17,
  kDeactivate = 18,
  kRestart = 19,
  kAck = 20,  // section 10.6: the agent acknowledges a command id
};
std::string_view FrameTypeName(uint8_t type);  // "HELLO", ..., "UNKNOWN"

enum class Tag : uint8_t {
  kProof = 1,
  kCapabilities = 2,
  kVersion = 3,
  kService = 4,
  kHeartbeatMs = 5,
  kServerTimeMs = 6,
  kReconnectWindowMs = 7,
  kTunnelId = 8,
  kServiceName = 9,
  kNonce = 10,
  kErrno = 11,
  kText = 12,
  kReconnectAfterMs = 13,
  kSequence = 14,
  kFrameType = 15,
  kErrorCode = 16,
  kRedirect = 17,
  kStreamer = 18,   // manager protocol (PROTOCOL.md section 10), repeatable
  kManager = 19,    // a manager URL in WELCOME (section 10.5), repeatable
  kCommandId = 20,  // section 10.6
  kMac = 255,
};

// Capability bits (u32).
inline constexpr uint32_t kCapPlainFrameMac = 1u << 0;
inline constexpr uint32_t kCapOpenFailedErrno = 1u << 1;
inline constexpr uint32_t kCapSpareData = 1u << 2;
// With kCapSpareData: the media server's first bytes may follow OPEN on a spare at once
// (PROTOCOL.md 8.1), the agent holding them until its camera connection is up.
inline constexpr uint32_t kCapSpareEarlyData = 1u << 3;
// The agent acknowledges commands that carry a command_id (PROTOCOL.md section 10.6).
inline constexpr uint32_t kCapCommandAck = 1u << 4;

enum class ErrorCode : uint16_t {
  kBadProof = 1,
  kFrameTooLarge = 2,
  kMalformedFrame = 3,
  kBadMac = 4,
  kUnexpectedFrame = 5,
  kTimeout = 6,
  kInternal = 7,
};

struct Field {
  uint8_t tag = 0;
  std::span<const uint8_t> value;
};

// A decoded frame; owns its payload bytes. Accessors validate lengths of known tags:
// a present field with the wrong size makes the accessor return nullopt, and Validate() reports it.
class Frame {
 public:
  Frame() = default;
  Frame(uint8_t type, std::vector<uint8_t> payload);
  // fields() views the frame's own payload: a copy re-parses its copy of the bytes, a move keeps
  // the buffer (and so the views) as they are.
  Frame(const Frame& other);
  Frame& operator=(const Frame& other);
  Frame(Frame&&) noexcept = default;
  Frame& operator=(Frame&&) noexcept = default;

  uint8_t type() const { return type_; }
  std::span<const uint8_t> payload() const { return payload_; }
  const std::vector<Field>& fields() const { return fields_; }

  // Fields exactly fill the payload and every known tag has a valid length (fixed sizes per
  // PROTOCOL.md; text tags bounded) and appears at most once unless repeatable (service).
  bool Valid() const { return valid_; }

  std::optional<std::span<const uint8_t>> Bytes(Tag tag) const;  // first occurrence
  std::optional<std::string_view> Text(Tag tag) const;
  std::optional<uint8_t> U8(Tag tag) const;
  std::optional<uint16_t> U16(Tag tag) const;
  std::optional<uint32_t> U32(Tag tag) const;
  std::optional<uint64_t> U64(Tag tag) const;
  std::vector<std::string_view> AllText(Tag tag) const;  // repeated fields, in order

 private:
  uint8_t type_ = 0;
  std::vector<uint8_t> payload_;
  std::vector<Field> fields_;  // views into payload_
  bool valid_ = false;
};

// Builds one frame's bytes (header included).
class FrameBuilder {
 public:
  explicit FrameBuilder(FrameType type);
  explicit FrameBuilder(uint8_t raw_type);
  FrameBuilder& Add(Tag tag, std::span<const uint8_t> value);
  FrameBuilder& AddText(Tag tag, std::string_view text);
  FrameBuilder& AddU8(Tag tag, uint8_t v);
  FrameBuilder& AddU16(Tag tag, uint16_t v);
  FrameBuilder& AddU32(Tag tag, uint32_t v);
  FrameBuilder& AddU64(Tag tag, uint64_t v);
  uint8_t type() const { return type_; }
  // Payload so far (without header), for MAC computation.
  std::span<const uint8_t> payload() const;
  // Header + payload. Asserts the payload fits kMaxFramePayload.
  std::vector<uint8_t> Finish() const;

 private:
  uint8_t type_;
  std::vector<uint8_t> bytes_;  // header placeholder + payload
};

enum class DecodeStatus { kNeedMore, kFrame, kTooLarge };

// Incremental decoder: feed bytes as they arrive, take frames out. Never buffers more than one
// frame (header + kMaxFramePayload); the length is checked before anything is allocated.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_payload = kMaxFramePayload) : max_payload_(max_payload) {}
  // Consumes bytes from `in` (advancing it) until a frame is complete, more is needed, or the
  // announced length exceeds the cap.
  DecodeStatus Decode(std::span<const uint8_t>& in, Frame* out);

 private:
  // Small fields first and narrow: every idle agent's control session holds a decoder.
  uint32_t max_payload_;
  uint8_t header_[kFrameHeaderBytes] = {};
  uint8_t header_len_ = 0;
  bool too_large_ = false;        // sticky: the stream cannot be resynchronised
  std::vector<uint8_t> payload_;  // sized from the header once its length passed the cap
};

// Plain-mode MAC (PROTOCOL.md section 7). Sealer appends the mac field and counts sequence
// numbers; Opener checks and strips it.
class FrameSealer {
 public:
  FrameSealer(const Digest& session_key, Direction direction)
      : key_(session_key), direction_(direction) {}
  std::vector<uint8_t> Seal(FrameBuilder& frame);

 private:
  Digest key_;
  Direction direction_;
  uint64_t sequence_ = 0;
};

class FrameOpener {
 public:
  FrameOpener(const Digest& session_key, Direction direction)
      : key_(session_key), direction_(direction) {}
  // True if the last field is a valid mac for the next sequence number; then `frame` is replaced
  // by the frame without its mac field.
  bool Open(Frame& frame);

 private:
  Digest key_;
  Direction direction_;
  uint64_t sequence_ = 0;
};

// The fields of OPEN and SPARE as their receiver checks them: a canonical tunnel id, a 16-byte
// nonce and, for OPEN, a service name. nullopt if one is missing or malformed; the caller
// checks the frame's type.
struct TunnelFields {
  TunnelId tunnel = 0;
  std::string_view tunnel_text;  // as sent (a view into the frame)
  std::string_view service;      // empty for SPARE
  Nonce nonce{};
};
std::optional<TunnelFields> ReadOpen(const Frame& frame);
std::optional<TunnelFields> ReadSpare(const Frame& frame);

}  // namespace camtunnel::proto
