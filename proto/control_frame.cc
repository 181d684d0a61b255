// Control frames (PROTOCOL.md sections 5 and 7). A decoded Frame is checked once, when it is
// built, against the field table; after that the accessors only look fields up.
#include "proto/control_frame.h"

#include <algorithm>

#include "proto/check.h"
#include "proto/manager_link.h"

namespace camtunnel::proto {
namespace {

constexpr size_t kFieldHeaderBytes = 3;  // tag:u8 | len:u16
constexpr size_t kMacFieldBytes = kFieldHeaderBytes + sizeof(FrameMacBytes);
constexpr size_t kMaxVersionText = 64;
// LP(url <= 255) + LP(key ref <= 53) + LP(sealed key 60), rounded up.
constexpr size_t kMaxStreamerField = 512;

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Text fields end up in
// logs and in the admin API's JSON, where invalid UTF-8 would break the consumer, not us.
bool IsUtf8(std::span<const uint8_t> s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = s[i];
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string_view AsText(std::span<const uint8_t> v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

// The value rule of each known tag (PROTOCOL.md section 5, field tags). Unknown tags are always
// acceptable: they are skipped for forward compatibility.
bool KnownTagValueOk(uint8_t tag, std::span<const uint8_t> v) {
  switch (static_cast<Tag>(tag)) {
    case Tag::kProof:
      return v.size() == kProofBytes;
    case Tag::kNonce:
      return v.size() == kNonceBytes;
    case Tag::kMac:
      return v.size() == sizeof(FrameMacBytes);
    case Tag::kCapabilities:
    case Tag::kHeartbeatMs:
    case Tag::kReconnectWindowMs:
    case Tag::kErrno:
    case Tag::kReconnectAfterMs:
      return v.size() == 4;
    case Tag::kServerTimeMs:
    case Tag::kSequence:
      return v.size() == 8;
    case Tag::kCommandId:
      return v.size() == 8 && std::any_of(v.begin(), v.end(), [](uint8_t b) { return b != 0; });
    case Tag::kManager:
      return IsValidStreamerUrl(AsText(v));
    case Tag::kFrameType:
      return v.size() == 1;
    case Tag::kErrorCode:
      return v.size() == 2;
    case Tag::kTunnelId:
      return ParseTunnelId(AsText(v)).has_value();
    case Tag::kServiceName:
      return IsValidServiceName(AsText(v));
    case Tag::kService:
      return ParseServiceEntry(AsText(v)).has_value();
    case Tag::kVersion:
      return v.size() <= kMaxVersionText && IsUtf8(v);
    case Tag::kText:
      return v.size() <= kMaxStatusText && IsUtf8(v);
    case Tag::kRedirect:
      // TODO: check the URL syntax here once the manager protocol fixes its form; the agent
      // only follows redirects to Streamers its manager issued, so this is not a trust boundary.
      return IsUtf8(v);
    case Tag::kStreamer:
      // LP(url) LP(key ref) LP(sealed key): the structure is checked where it is unsealed
      // (proto/manager_link.cc); here only the bound that keeps a list of them small.
      return v.size() <= kMaxStreamerField;
  }
  return true;
}

bool IsKnownTag(uint8_t tag) { return (tag >= 1 && tag <= 20) || tag == 255; }

template <typename T>
std::optional<T> BigEndian(std::optional<std::span<const uint8_t>> v) {
  if (!v || v->size() != sizeof(T)) {
    return std::nullopt;
  }
  T out = 0;
  for (uint8_t b : *v) {
    out = static_cast<T>((out << 8) | b);
  }
  return out;
}

}  // namespace

std::string_view FrameTypeName(uint8_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kWelcome:
      return "WELCOME";
    case FrameType::kPing:
      return "PING";
    case FrameType::kPong:
      return "PONG";
    case FrameType::kStatus:
      return "STATUS";
    case FrameType::kOpen:
      return "OPEN";
    case FrameType::kOpenFailed:
      return "OPEN_FAILED";
    case FrameType::kGoaway:
      return "GOAWAY";
    case FrameType::kUnsupported:
      return "UNSUPPORTED";
    case FrameType::kError:
      return "ERROR";
    case FrameType::kSpare:
      return "SPARE";
    case FrameType::kOpened:
      return "OPENED";
    case FrameType::kAssign:
      return "ASSIGN";
    case FrameType::kSwitch:
      return "SWITCH";
    case FrameType::kDeactivate:
      return "DEACTIVATE";
    case FrameType::kRestart:
      return "RESTART";
    case FrameType::kAck:
      return "ACK";
  }
  return "UNKNOWN";
}

Frame::Frame(uint8_t type, std::vector<uint8_t> payload)
    : type_(type), payload_(std::move(payload)) {
  std::span<const uint8_t> rest = payload_;
  while (!rest.empty()) {
    if (rest.size() < kFieldHeaderBytes) {
      fields_.clear();  // a field running past the end: nothing in this frame can be trusted
      return;
    }
    const size_t len = (size_t{rest[1]} << 8) | rest[2];
    if (rest.size() - kFieldHeaderBytes < len) {
      fields_.clear();
      return;
    }
    fields_.push_back(Field{rest[0], rest.subspan(kFieldHeaderBytes, len)});
    rest = rest.subspan(kFieldHeaderBytes + len);
  }
  valid_ = true;
  bool seen[256] = {};
  for (const Field& f : fields_) {
    if (!IsKnownTag(f.tag)) {
      continue;
    }
    const bool repeatable = f.tag == static_cast<uint8_t>(Tag::kService) ||
                            f.tag == static_cast<uint8_t>(Tag::kStreamer) ||
                            f.tag == static_cast<uint8_t>(Tag::kManager);
    if ((seen[f.tag] && !repeatable) || !KnownTagValueOk(f.tag, f.value)) {
      valid_ = false;
      return;
    }
    seen[f.tag] = true;
  }
}

Frame::Frame(const Frame& other) : Frame(other.type_, other.payload_) {}

Frame& Frame::operator=(const Frame& other) {
  if (this != &other) {
    *this = Frame(other);
  }
  return *this;
}

std::optional<std::span<const uint8_t>> Frame::Bytes(Tag tag) const {
  for (const Field& f : fields_) {
    if (f.tag == static_cast<uint8_t>(tag)) {
      return f.value;
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> Frame::Text(Tag tag) const {
  auto v = Bytes(tag);
  if (!v) {
    return std::nullopt;
  }
  return AsText(*v);
}

std::optional<uint8_t> Frame::U8(Tag tag) const { return BigEndian<uint8_t>(Bytes(tag)); }
std::optional<uint16_t> Frame::U16(Tag tag) const { return BigEndian<uint16_t>(Bytes(tag)); }
std::optional<uint32_t> Frame::U32(Tag tag) const { return BigEndian<uint32_t>(Bytes(tag)); }
std::optional<uint64_t> Frame::U64(Tag tag) const { return BigEndian<uint64_t>(Bytes(tag)); }

std::vector<std::string_view> Frame::AllText(Tag tag) const {
  std::vector<std::string_view> out;
  for (const Field& f : fields_) {
    if (f.tag == static_cast<uint8_t>(tag)) {
      out.push_back(AsText(f.value));
    }
  }
  return out;
}

FrameBuilder::FrameBuilder(FrameType type) : FrameBuilder(static_cast<uint8_t>(type)) {}

FrameBuilder::FrameBuilder(uint8_t raw_type) : type_(raw_type), bytes_(kFrameHeaderBytes, 0) {}

FrameBuilder& FrameBuilder::Add(Tag tag, std::span<const uint8_t> value) {
  // Building a frame that cannot be encoded is a bug in the caller, not a network condition.
  if (value.size() > 0xffff) {
    CT_FATAL("frame field over 65535 bytes");
  }
  bytes_.push_back(static_cast<uint8_t>(tag));
  bytes_.push_back(static_cast<uint8_t>(value.size() >> 8));
  bytes_.push_back(static_cast<uint8_t>(value.size()));
  bytes_.insert(bytes_.end(), value.begin(), value.end());
  return *this;
}

FrameBuilder& FrameBuilder::AddText(Tag tag, std::string_view text) {
  return Add(tag, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

FrameBuilder& FrameBuilder::AddU8(Tag tag, uint8_t v) {
  const uint8_t b[1] = {v};
  return Add(tag, b);
}

FrameBuilder& FrameBuilder::AddU16(Tag tag, uint16_t v) {
  const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  return Add(tag, b);
}

FrameBuilder& FrameBuilder::AddU32(Tag tag, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; ++i) {
    b[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  }
  return Add(tag, b);
}

FrameBuilder& FrameBuilder::AddU64(Tag tag, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  }
  return Add(tag, b);
}

std::span<const uint8_t> FrameBuilder::payload() const {
  return std::span<const uint8_t>(bytes_).subspan(kFrameHeaderBytes);
}

std::vector<uint8_t> FrameBuilder::Finish() const {
  const size_t length = bytes_.size() - kFrameHeaderBytes;
  if (length > kMaxFramePayload) {
    CT_FATAL("frame payload over kMaxFramePayload");
  }
  std::vector<uint8_t> out = bytes_;
  out[0] = type_;
  out[1] = static_cast<uint8_t>(length >> 16);
  out[2] = static_cast<uint8_t>(length >> 8);
  out[3] = static_cast<uint8_t>(length);
  return out;
}

DecodeStatus FrameDecoder::Decode(std::span<const uint8_t>& in, Frame* out) {
  if (too_large_) {
    return DecodeStatus::kTooLarge;
  }
  while (header_len_ < kFrameHeaderBytes && !in.empty()) {
    header_[header_len_++] = in.front();
    in = in.subspan(1);
  }
  if (header_len_ < kFrameHeaderBytes) {
    return DecodeStatus::kNeedMore;
  }
  const size_t length = (size_t{header_[1]} << 16) | (size_t{header_[2]} << 8) | header_[3];
  // The cap is checked before a single payload byte is stored, so a peer announcing 16 MiB
  // costs us nothing.
  if (length > max_payload_) {
    too_large_ = true;
    return DecodeStatus::kTooLarge;
  }
  if (payload_.empty()) {
    payload_.reserve(length);
  }
  const size_t take = std::min(length - payload_.size(), in.size());
  payload_.insert(payload_.end(), in.begin(), in.begin() + take);
  in = in.subspan(take);
  if (payload_.size() < length) {
    return DecodeStatus::kNeedMore;
  }
  // Moving the payload out leaves the decoder holding no buffer between frames (idle connections
  // cost nothing here).
  *out = Frame(header_[0], std::move(payload_));
  payload_ = {};
  header_len_ = 0;
  return DecodeStatus::kFrame;
}

std::vector<uint8_t> FrameSealer::Seal(FrameBuilder& frame) {
  const FrameMacBytes mac = FrameMac(key_, direction_, sequence_, frame.type(), frame.payload());
  ++sequence_;
  frame.Add(Tag::kMac, mac);
  return frame.Finish();
}

bool FrameOpener::Open(Frame& frame) {
  const std::vector<Field>& fields = frame.fields();
  // fields() is empty when the fields did not exactly fill the payload, so a non-empty list whose
  // last entry is the mac means the mac field is the payload's last kMacFieldBytes bytes.
  if (fields.empty() || fields.back().tag != static_cast<uint8_t>(Tag::kMac) ||
      fields.back().value.size() != sizeof(FrameMacBytes)) {
    return false;
  }
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    if (fields[i].tag == static_cast<uint8_t>(Tag::kMac)) {
      return false;  // a second mac anywhere is a misplaced one
    }
  }
  const std::span<const uint8_t> body =
      frame.payload().first(frame.payload().size() - kMacFieldBytes);
  const FrameMacBytes expected = FrameMac(key_, direction_, sequence_, frame.type(), body);
  if (!ConstantTimeEqual(expected, fields.back().value)) {
    return false;
  }
  ++sequence_;
  frame = Frame(frame.type(), std::vector<uint8_t>(body.begin(), body.end()));
  return true;
}

std::optional<TunnelFields> ReadSpare(const Frame& frame) {
  TunnelFields f;
  const auto text = frame.Text(Tag::kTunnelId);
  const auto tunnel = text ? ParseTunnelId(*text) : std::nullopt;
  const auto nonce = frame.Bytes(Tag::kNonce);
  if (!tunnel || !nonce || nonce->size() != kNonceBytes) {
    return std::nullopt;
  }
  f.tunnel = *tunnel;
  f.tunnel_text = *text;
  std::copy(nonce->begin(), nonce->end(), f.nonce.begin());
  return f;
}

std::optional<TunnelFields> ReadOpen(const Frame& frame) {
  std::optional<TunnelFields> f = ReadSpare(frame);
  const auto service = frame.Text(Tag::kServiceName);
  if (!f || !service || service->empty()) {
    return std::nullopt;
  }
  f->service = *service;
  return f;
}

}  // namespace camtunnel::proto
