#include "gateway/request_filter.h"

#include <algorithm>

#include "proto/check.h"
#include "proto/encoding.h"
#include "proto/http_head.h"

namespace camtunnel::gateway {
namespace {

// A chunk-size line is a size and, rarely, an extension: 1 KiB is far beyond any real client and
// keeps a hostile line from being scanned forever. Trailers get the bound of a head.
constexpr size_t kMaxChunkLineBytes = 1024;
constexpr size_t kMaxTrailerBytes = proto::kMaxHeadBytes;

bool IsControl(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// Transfer-Encoding whose final coding is chunked, applied once (RFC 9112 6.1, 6.3).
bool IsChunkedLast(std::string_view value) {
  int chunked = 0;
  bool last_is_chunked = false;
  while (true) {
    size_t comma = value.find(',');
    std::string_view coding = value.substr(0, comma);
    while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) {
      coding.remove_prefix(1);
    }
    while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) {
      coding.remove_suffix(1);
    }
    last_is_chunked = proto::EqualsIgnoreCase(coding, "chunked");
    chunked += last_is_chunked ? 1 : 0;
    if (comma == std::string_view::npos) {
      break;
    }
    value.remove_prefix(comma + 1);
  }
  return chunked == 1 && last_is_chunked;
}

}  // namespace

RequestFilter::RequestFilter(const FrontendRoute& route, const FrontendRouteConfig& config,
                             std::string_view camera_authority)
    : route_(route), config_(config), camera_authority_(camera_authority) {
  switch (route.form) {
    case FrontendForm::kRtspHost:
    case FrontendForm::kRtspPath:
      mode_ = Mode::kRtsp;
      break;
    case FrontendForm::kHttpHost:
    case FrontendForm::kHttpPath:
      mode_ = Mode::kHttp;
      break;
    case FrontendForm::kConnect:
      mode_ = Mode::kConnect;
      break;
    case FrontendForm::kRtspOverHttp:
      mode_ = Mode::kRaw;
      state_ = State::kRaw;
      break;
  }
}

FrontendError RequestFilter::Fail(FrontendError error) {
  error_ = error;
  head_buffer_ = std::string();  // nothing more will be parsed: give the memory back
  return error;
}

FrontendError RequestFilter::Feed(std::span<const uint8_t> in, std::string* out) {
  if (failed()) {
    return error_;
  }
  const std::string_view data(reinterpret_cast<const char*>(in.data()), in.size());
  if (state_ == State::kRaw) {
    out->append(data);
    return FrontendError::kOk;
  }
  // Bytes in [emit_from, pos) pass unchanged: they are appended as one run when something else
  // has to be written (a rewritten head), when a head has to be held back, or at the end.
  size_t pos = 0;
  size_t emit_from = 0;
  auto flush = [&](size_t to) {
    out->append(data.data() + emit_from, to - emit_from);
    emit_from = to;
  };
  // Start of the current head in `data`; 0 for a head continued from head_buffer_.
  size_t head_begin = 0;

  while (pos < data.size()) {
    switch (state_) {
      case State::kRaw:
        pos = data.size();
        break;

      case State::kBody:
      case State::kInterleavedData:
      case State::kChunkData: {
        uint64_t n = std::min<uint64_t>(body_remaining_, data.size() - pos);
        pos += n;
        body_remaining_ -= n;
        if (body_remaining_ == 0) {
          state_ = state_ == State::kChunkData ? State::kChunkDataCr : State::kIdle;
        }
        break;
      }

      case State::kIdle: {
        char c = data[pos];
        if (c == '\r' || c == '\n') {
          // Stray CRLF between messages (RFC 9112 2.2 says ignore it): forwarded, not parsed;
          // before a CONNECT head nothing is for the camera, so there it is dropped.
          if (mode_ == Mode::kConnect) {
            flush(pos);
            emit_from = pos + 1;
          }
          ++pos;
        } else if (c == '$' && mode_ == Mode::kRtsp) {
          state_ = State::kInterleavedHeader;
          interleaved_header_seen_ = 1;
          interleaved_length_ = 0;
          ++pos;
        } else {
          state_ = State::kHead;
          head_begin = pos;
          head_scanned_ = 0;
          head_match_ = 0;
        }
        break;
      }

      case State::kInterleavedHeader: {
        // `$ | channel | length u16 big-endian`: byte 1 is the channel, 2 and 3 the length.
        uint8_t byte = static_cast<uint8_t>(data[pos++]);
        if (interleaved_header_seen_ == 2) {
          interleaved_length_ = static_cast<uint16_t>(byte << 8);
        } else if (interleaved_header_seen_ == 3) {
          interleaved_length_ = static_cast<uint16_t>(interleaved_length_ | byte);
        }
        if (++interleaved_header_seen_ == 4) {
          body_remaining_ = interleaved_length_;
          state_ = interleaved_length_ != 0 ? State::kInterleavedData : State::kIdle;
        }
        break;
      }

      case State::kHead: {
        // Scan for CRLF CRLF across calls, so a head fed one byte at a time is scanned once,
        // not re-parsed per byte; the parser runs once, on the complete head.
        size_t limit = pos + std::min(data.size() - pos, proto::kMaxHeadBytes - head_scanned_);
        bool complete = false;
        while (pos < limit && !complete) {
          char c = data[pos++];
          ++head_scanned_;
          if (c != '\n' && (head_match_ == 1 || head_match_ == 3)) {
            // A bare CR (or LF): malformed for the parser too; said now rather than at 8 KiB.
            flush(head_begin);
            return Fail(FrontendError::kMalformedHead);
          }
          if (c == '\r') {
            head_match_ = head_match_ == 2 ? 3 : 1;
          } else if (c == '\n') {
            if (head_match_ != 1 && head_match_ != 3) {
              flush(head_begin);
              return Fail(FrontendError::kMalformedHead);
            }
            complete = head_match_ == 3;
            head_match_ = 2;
          } else {
            head_match_ = 0;
          }
        }
        if (!complete) {
          if (head_scanned_ == proto::kMaxHeadBytes) {
            flush(head_begin);
            return Fail(FrontendError::kHeadTooLarge);
          }
          // The head continues in a later call: hold it back (it may need a rewrite).
          flush(head_begin);
          head_buffer_.append(data.substr(head_begin));
          emit_from = data.size();
          break;
        }
        bool buffered = !head_buffer_.empty();
        if (buffered) {
          head_buffer_.append(data.substr(0, pos));
        }
        std::string_view head =
            buffered ? std::string_view(head_buffer_) : data.substr(head_begin, pos - head_begin);
        HeadAction action;
        if (FrontendError error = OnHead(head, &action); error != FrontendError::kOk) {
          flush(head_begin);
          return Fail(error);
        }
        if (buffered) {
          // The earlier part of this head was held back; write it all from the buffer.
          if (action.replace) {
            out->append(rebuilt_head_);
          } else if (!action.drop) {
            if (action.rewrite) {
              out->append(head.substr(0, action.target_offset));
              out->append(rewritten_target_);
              out->append(head.substr(action.target_offset + action.target_size));
            } else {
              out->append(head);
            }
          }
          emit_from = pos;
          head_buffer_ = std::string();  // a split head is rare: do not keep 8 KiB per idle conn
        } else if (action.drop) {
          flush(head_begin);
          emit_from = pos;
        } else if (action.replace) {
          flush(head_begin);
          out->append(rebuilt_head_);
          emit_from = pos;
        } else if (action.rewrite) {
          flush(head_begin + action.target_offset);
          out->append(rewritten_target_);
          emit_from = head_begin + action.target_offset + action.target_size;
        }
        break;
      }

      default:
        if (!ChunkFramingByte(data[pos])) {
          flush(pos);
          return Fail(FrontendError::kBadChunkedBody);
        }
        ++pos;
        break;
    }
  }
  if (emit_from < data.size()) {
    flush(data.size());
  }
  return FrontendError::kOk;
}

FrontendError RequestFilter::OnHead(std::string_view head_bytes, HeadAction* action) {
  if (mode_ == Mode::kRtsp && head_bytes.starts_with("RTSP/")) {
    return OnRtspResponse(head_bytes);
  }
  proto::RequestHead head;
  proto::HeadResult result = proto::ParseRequestHead(head_bytes, &head);
  if (result != proto::HeadResult::kComplete || head.head_bytes != head_bytes.size()) {
    // The scanner found the end of the head; a parser that disagrees means a malformed head.
    return result == proto::HeadResult::kComplete || result == proto::HeadResult::kNeedMore
               ? FrontendError::kMalformedHead
               : FrontendErrorFromHeadResult(result);
  }
  ++heads_;
  if (mode_ == Mode::kConnect) {
    // The CONNECT head was for the gateway (routing); the tunnelled bytes follow it.
    action->drop = true;
    state_ = State::kRaw;
    return FrontendError::kOk;
  }
  FrontendError error =
      CheckRoutedRequest(head, route_, config_, camera_authority_, &rewritten_target_);
  if (error == FrontendError::kOk) {
    // After these the client sends no more HTTP requests on this connection (RTSP-over-HTTP
    // base64, or a protocol the camera switches to with 101).
    // TODO: an Upgrade the camera refuses (no 101) leaves the rest unparsed, so path-form
    // rewriting stops; fixing it needs the response direction, which this class does not see.
    if (mode_ == Mode::kHttp &&
        (IsRtspOverHttp(head) ||
         (head.headers.Find("Upgrade") &&
          proto::HeaderHasToken(head.headers.Find("Connection").value_or(""), "upgrade")))) {
      state_ = State::kRaw;
    } else {
      error = SetBodyFraming(head.headers, head.protocol);
    }
  }
  if (error != FrontendError::kOk) {
    if (mode_ == Mode::kRtsp) {
      error_cseq_ = std::string(head.headers.Find("CSeq").value_or(std::string_view()));
    }
    return error;
  }
  if (!rewritten_target_.empty()) {
    action->rewrite = true;
    action->target_offset = static_cast<size_t>(head.target.data() - head_bytes.data());
    action->target_size = head.target.size();
  }
  if (head.headers.Find("Proxy-Authorization")) {
    RemoveProxyAuthorization(head, head_bytes, action);
  }
  return FrontendError::kOk;
}

// Rebuilds the head without its Proxy-Authorization lines (and with the rewritten target, if
// any). Header lines hold no CRLF (no folding), so each ends at the first CRLF after its name.
void RequestFilter::RemoveProxyAuthorization(const proto::RequestHead& head,
                                             std::string_view head_bytes, HeadAction* action) {
  rebuilt_head_.clear();
  size_t pos = 0;
  if (action->rewrite) {
    rebuilt_head_.append(head_bytes.substr(0, action->target_offset));
    rebuilt_head_.append(rewritten_target_);
    pos = action->target_offset + action->target_size;
  }
  for (size_t i = 0; i < head.headers.count; ++i) {
    const proto::HeaderField& f = head.headers.fields[i];
    if (!proto::EqualsIgnoreCase(f.name, "Proxy-Authorization")) {
      continue;
    }
    const size_t begin = static_cast<size_t>(f.name.data() - head_bytes.data());
    const size_t end = head_bytes.find("\r\n", begin) + 2;
    rebuilt_head_.append(head_bytes.substr(pos, begin - pos));
    pos = end;
  }
  rebuilt_head_.append(head_bytes.substr(pos));
  action->replace = true;
}

// RTSP lets the server send requests too (OPTIONS or GET_PARAMETER as keepalive, ANNOUNCE,
// SET_PARAMETER: RFC 2326 10); the client's answers travel in this direction and pass unchanged,
// framed by their Content-Length.
FrontendError RequestFilter::OnRtspResponse(std::string_view head_bytes) {
  proto::ResponseHead head;
  proto::HeadResult result = proto::ParseResponseHead(head_bytes, &head);
  if (result != proto::HeadResult::kComplete || head.head_bytes != head_bytes.size() ||
      head.protocol != proto::Protocol::kRtsp10) {
    return result == proto::HeadResult::kComplete || result == proto::HeadResult::kNeedMore
               ? FrontendError::kMalformedHead
               : FrontendErrorFromHeadResult(result);
  }
  ++heads_;
  FrontendError error = SetBodyFraming(head.headers, head.protocol);
  if (error != FrontendError::kOk) {
    error_cseq_ = std::string(head.headers.Find("CSeq").value_or(std::string_view()));
  }
  return error;
}

FrontendError RequestFilter::SetBodyFraming(const proto::HeaderList& headers,
                                            proto::Protocol protocol) {
  size_t transfer_encodings = headers.Count("Transfer-Encoding");
  size_t content_lengths = headers.Count("Content-Length");
  if (transfer_encodings > 0) {
    // RTSP 1.0 has no transfer codings; HTTP/1.0 must not use them (RFC 9112 6.1); with a
    // Content-Length too, the framing is ambiguous (request smuggling): all refused.
    if (mode_ == Mode::kRtsp || protocol == proto::Protocol::kHttp10 || content_lengths > 0 ||
        transfer_encodings > 1 || !IsChunkedLast(*headers.Find("Transfer-Encoding"))) {
      return FrontendError::kBadBodyLength;
    }
    state_ = State::kChunkSize;
    body_remaining_ = 0;
    chunk_digits_ = 0;
    chunk_ext_semicolon_ = false;
    line_bytes_ = 0;
    return FrontendError::kOk;
  }
  if (content_lengths > 1) {
    return FrontendError::kBadBodyLength;
  }
  if (content_lengths == 1) {
    std::optional<uint64_t> length = proto::ParseContentLength(*headers.Find("Content-Length"));
    if (!length) {
      return FrontendError::kBadBodyLength;
    }
    if (*length > 0) {
      body_remaining_ = *length;
      state_ = State::kBody;
      return FrontendError::kOk;
    }
  }
  state_ = State::kIdle;
  return FrontendError::kOk;
}

bool RequestFilter::ChunkFramingByte(char c) {
  switch (state_) {
    case State::kChunkSize: {
      if (++line_bytes_ > kMaxChunkLineBytes) {
        return false;
      }
      int digit = proto::HexDigitValue(c);
      if (digit >= 0) {
        if (chunk_digits_ == 16) {  // more than 64 bits (leading zeros included: strict)
          return false;
        }
        body_remaining_ = (body_remaining_ << 4) | static_cast<uint64_t>(digit);
        ++chunk_digits_;
        return true;
      }
      if (chunk_digits_ == 0) {
        return false;
      }
      if (c == '\r') {
        state_ = State::kChunkSizeLf;
        return true;
      }
      if (c == ';' || c == ' ' || c == '\t') {
        chunk_ext_semicolon_ = c == ';';
        state_ = State::kChunkExt;
        return true;
      }
      return false;
    }
    case State::kChunkExt:
      // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): checked loosely (whitespace
      // then ';' first, then no control characters) since the bytes are forwarded unchanged.
      if (++line_bytes_ > kMaxChunkLineBytes) {
        return false;
      }
      if (c == '\r') {
        state_ = State::kChunkSizeLf;
        return true;
      }
      if (!chunk_ext_semicolon_) {
        chunk_ext_semicolon_ = c == ';';
        return c == ';' || c == ' ' || c == '\t';
      }
      return !IsControl(c) || c == '\t';
    case State::kChunkSizeLf:
      if (c != '\n') {
        return false;
      }
      line_bytes_ = 0;
      trailer_colon_ = false;
      state_ = body_remaining_ == 0 ? State::kTrailerStart : State::kChunkData;
      return true;
    case State::kChunkDataCr:
      state_ = State::kChunkDataLf;
      return c == '\r';
    case State::kChunkDataLf:
      state_ = State::kChunkSize;
      body_remaining_ = 0;
      chunk_digits_ = 0;
      chunk_ext_semicolon_ = false;
      line_bytes_ = 0;
      return c == '\n';
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kTrailerEndLf;
        return true;
      }
      // No obs-fold (leading whitespace), no empty field name.
      if (c == ' ' || c == '\t' || c == ':' || IsControl(c) || ++line_bytes_ > kMaxTrailerBytes) {
        return false;
      }
      trailer_colon_ = false;
      state_ = State::kTrailerLine;
      return true;
    case State::kTrailerLine:
      if (++line_bytes_ > kMaxTrailerBytes) {
        return false;
      }
      if (c == '\r') {
        state_ = State::kTrailerLineLf;
        return trailer_colon_;
      }
      trailer_colon_ = trailer_colon_ || c == ':';
      return !IsControl(c) || c == '\t';
    case State::kTrailerLineLf:
      state_ = State::kTrailerStart;
      return c == '\n' && ++line_bytes_ <= kMaxTrailerBytes;
    case State::kTrailerEndLf:
      state_ = State::kIdle;
      return c == '\n';
    default:
      CT_DCHECK(false && "not a chunk framing state");  // Release: the request is refused
      return false;
  }
}

uint64_t RequestFilter::PassThroughBudget() const {
  if (failed()) {
    return 0;
  }
  switch (state_) {
    case State::kRaw:
      return UINT64_MAX;
    case State::kBody:
    case State::kInterleavedData:
    case State::kChunkData:
      return body_remaining_;
    default:
      return 0;
  }
}

void RequestFilter::SkipPassThrough(uint64_t n) {
  uint64_t budget = PassThroughBudget();
  CT_DCHECK(n <= budget);  // Release: clamped to the budget below
  if (state_ == State::kRaw || budget == 0) {
    return;
  }
  n = std::min(n, budget);
  body_remaining_ -= n;
  if (body_remaining_ == 0) {
    state_ = state_ == State::kChunkData ? State::kChunkDataCr : State::kIdle;
  }
}

}  // namespace camtunnel::gateway
