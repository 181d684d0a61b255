// The filter on the client->camera byte stream of a routed frontend connection: a streaming,
// bounded state machine that takes chunks split anywhere (even inside a head) and emits the bytes
// to forward to the camera. Per form:
//   RTSP (host, path): request heads are parsed (at most one head, proto::kMaxHeadBytes, is ever
//     buffered); `$ ch len16 data` interleaved frames, Content-Length bodies and the client's
//     responses to server->client requests pass untouched. Every request head is checked by
//     CheckRoutedRequest; path form rewrites the request-line URL.
//   HTTP (host, path; keep-alive): the same, with Content-Length or chunked request bodies
//     (chunk lines and trailers validated, bounded). An Upgrade or RTSP-over-HTTP request turns
//     the rest of the stream raw, since what follows is no longer HTTP requests.
//   kRtspOverHttp: raw, byte-exact from the first byte.
//   kConnect: the CONNECT head is for the gateway and is consumed; the rest is raw.
// Feed the connection's bytes from its very first byte, the routed first head included.
// Only the request-target ever changes, and Proxy-Authorization fields are removed (they carry
// the frontend's bearer token, hop-by-hop, for the gateway only): every other byte is copied
// exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gateway/frontend_route.h"

namespace camtunnel::gateway {

class RequestFilter {
 public:
  // `camera_authority`: host:port of the service the agent exposes (target of path rewrites).
  RequestFilter(const FrontendRoute& route, const FrontendRouteConfig& config,
                std::string_view camera_authority);

  // Appends to *out the bytes of `in` to forward, transformed. On an error, *out holds every
  // byte forwardable before the offending head (or byte, in body framing); the error is sticky:
  // later calls append nothing and return it again.
  FrontendError Feed(std::span<const uint8_t> in, std::string* out);

  // Zero-copy fast path: how many of the next bytes Feed would forward unchanged without looking
  // at them (body, interleaved frame or chunk data; unbounded in raw mode; 0 when the next byte
  // must be parsed). A caller that forwards n <= PassThroughBudget() bytes itself reports them
  // with SkipPassThrough(n) instead of feeding them.
  uint64_t PassThroughBudget() const;
  void SkipPassThrough(uint64_t n);

  // Google-style accessors (the .clang-tidy naming rule knows no accessor exception).
  // NOLINTBEGIN(readability-identifier-naming)
  bool failed() const { return error_ != FrontendError::kOk; }
  FrontendError error() const { return error_; }
  // CSeq of the RTSP head that caused the error (to echo in the answer), or empty.
  std::string_view error_cseq() const { return error_cseq_; }
  // Message heads seen so far: requests (a consumed CONNECT head included) and the client's
  // answers to RTSP server->client requests.
  uint64_t heads() const { return heads_; }
  // NOLINTEND(readability-identifier-naming)

 private:
  enum class Mode : uint8_t { kRtsp, kHttp, kConnect, kRaw };
  enum class State : uint8_t {
    kIdle,               // between messages: next byte starts a head, a '$' frame, or is CR/LF
    kHead,               // inside a head, scanning for CRLF CRLF
    kBody,               // body_remaining_ bytes of Content-Length body
    kInterleavedHeader,  // inside the 4-byte `$ ch len16` header (interleaved_header_seen_)
    kInterleavedData,    // body_remaining_ bytes of interleaved payload
    kChunkSize,          // chunk-size hex digits
    kChunkExt,           // after the size: BWS / ';' extensions up to CR
    kChunkSizeLf,        // CR seen at the end of a chunk-size line
    kChunkData,          // body_remaining_ bytes of chunk data
    kChunkDataCr,        // CRLF after chunk data
    kChunkDataLf,
    kTrailerStart,  // start of a trailer line or of the final CRLF
    kTrailerLine,
    kTrailerLineLf,
    kTrailerEndLf,
    kRaw,  // pass everything
  };

  // What to do with a complete head: forward it as is, with `target` replaced, or not at all.
  struct HeadAction {
    bool drop = false;
    size_t target_offset = 0;  // of the request-target within the head
    size_t target_size = 0;
    bool rewrite = false;  // replace [target_offset, +target_size) by rewritten_target_
    bool replace = false;  // forward rebuilt_head_ instead of the head
  };
  // Parses and checks a complete head, chooses the state for what follows it.
  FrontendError OnHead(std::string_view head_bytes, HeadAction* action);
  FrontendError OnRtspResponse(std::string_view head_bytes);
  void RemoveProxyAuthorization(const proto::RequestHead& head, std::string_view head_bytes,
                                HeadAction* action);
  // Chooses the state after a head: body (Content-Length), chunked, or the next head.
  FrontendError SetBodyFraming(const proto::HeaderList& headers, proto::Protocol protocol);
  // One byte of a chunk-size line, chunk CRLF or trailer; false if the framing is malformed.
  bool ChunkFramingByte(char c);
  FrontendError Fail(FrontendError error);

  FrontendRoute route_;
  FrontendRouteConfig config_;
  std::string camera_authority_;
  Mode mode_;
  State state_ = State::kIdle;
  FrontendError error_ = FrontendError::kOk;
  std::string error_cseq_;
  // A head split across Feed calls; released once the head completes, so an idle connection
  // holds no buffer. Never longer than proto::kMaxHeadBytes.
  std::string head_buffer_;
  size_t head_scanned_ = 0;  // bytes of the current head scanned so far
  uint8_t head_match_ = 0;   // how much of "\r\n\r\n" the scan has matched
  uint64_t body_remaining_ = 0;
  uint8_t interleaved_header_seen_ = 0;
  uint16_t interleaved_length_ = 0;
  uint8_t chunk_digits_ = 0;
  bool chunk_ext_semicolon_ = false;  // a ';' seen on the current chunk-size line
  bool trailer_colon_ = false;        // a ':' seen on the current trailer line
  size_t line_bytes_ = 0;  // length of the current chunk-size line, or of the trailer section
  std::string rewritten_target_;  // scratch for CheckRoutedRequest, kept to reuse its capacity
  std::string rebuilt_head_;      // a head with Proxy-Authorization removed (rare)
  uint64_t heads_ = 0;
};

}  // namespace camtunnel::gateway
