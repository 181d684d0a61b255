// Routing of the media server's requests on the gateway's frontend listener: which agent and
// which of its services a request names, in which form (host, path, CONNECT, RTSP over HTTP),
// and how a request-target is rewritten for the camera. Also the error and redirect answers.
// Pure code: no I/O, no allocation beyond the strings returned.
//
// Forms (DESIGN.md "Data path", proto/PROTOCOL.md section 1 for agent ids):
//   kRtspHost     rtsp://<agent>.<suffix>[:port]/path          nothing rewritten (Digest-safe)
//   kRtspPath     rtsp://<host>[:port]/<agent>/rest            -> rtsp://<camera authority>/rest
//   kHttpHost     any HTTP request whose Host (or absolute-form URL) is <agent>.<suffix>[:port]
//   kHttpPath     GET /<agent>/rest HTTP/1.1                   -> GET /rest HTTP/1.1
//   kConnect      CONNECT <agent>[.<suffix>]:<service or port> the head is for the gateway only
//   kRtspOverHttp GET/POST carrying application/x-rtsp-tunnelled, host form only, relayed raw
//
// Agent ids are matched literally: no percent-decoding and no case folding. Host names are
// case-insensitive in URLs, but an agent id has exactly one canonical (lowercase) form because it
// is what gets hashed to a home shard and MACed; so `CAM-1.<suffix>` is refused with 400 instead
// of being folded to `cam-1`, and one camera never answers to two names. The suffix itself is
// compared case-insensitively (it is the operator's DNS name, not an identifier).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/http_head.h"

namespace camtunnel::gateway {

// Everything that can be wrong with a frontend request, for routing (first head) and for every
// later head of the connection (RequestFilter). Each maps to one status and one fixed reason.
enum class FrontendError : uint8_t {
  kOk = 0,
  kMalformedHead,         // 400 the head parser refused the head
  kHeadTooLarge,          // 431 no end of head within proto::kMaxHeadBytes
  kTooManyHeaders,        // 431 more than proto::kMaxHeaders fields
  kBadUrl,                // 400 request-target is not a URL of the expected scheme / shape
  kNoAgent,               // 400 the URL (or Host) names no agent, e.g. `OPTIONS *` first
  kNonCanonicalAgent,     // 400 agent label not canonical (upper case, dots, '%', too long, ...)
  kOtherAgent,            // 403 a later head names another agent than the connection's
  kFormNotAllowed,        // 403 RTSP over HTTP in path form (its base64 body cannot be rewritten)
  kMethodNotAllowed,      // 405 known method the gateway refuses (TRACE, REDIRECT, late CONNECT)
  kMethodNotImplemented,  // 501 unknown method
  kProtocolMismatch,      // 400 a later head is not of the connection's protocol (RTSP vs HTTP)
  kBadHost,               // 400 HTTP/1.1 without exactly one Host, or a malformed Host value
  kBadConnectTarget,      // 400 CONNECT target is not <agent>:<service name or port>
  kBadBodyLength,         // 400 invalid/duplicate Content-Length, or with Transfer-Encoding
  kBadChunkedBody,        // 400 malformed chunked transfer coding
};
// Status code to answer (400, 403, 405, 431, 501).
int FrontendErrorStatus(FrontendError error);
// One-line explanation for operators (HTTP body text, RTSP reason suffix, logs).
std::string_view FrontendErrorReason(FrontendError error);
// Short stable snake_case name, for metric labels.
std::string_view FrontendErrorName(FrontendError error);
// Maps a head-parser failure (anything but kComplete/kNeedMore) to the error to answer.
FrontendError FrontendErrorFromHeadResult(proto::HeadResult result);

enum class FrontendForm : uint8_t {
  kRtspHost,
  kRtspPath,
  kHttpHost,
  kHttpPath,
  kConnect,
  kRtspOverHttp
};
enum class FrontendProtocol : uint8_t { kRtsp, kHttp };
// The protocol in which answers on a connection of this form are written.
FrontendProtocol ProtocolOfForm(FrontendForm form);
// For answering a first request that did not even parse: RTSP if the first line ends in
// " RTSP/1.0", HTTP otherwise.
FrontendProtocol SniffProtocol(std::string_view first_bytes);

struct FrontendRouteConfig {
  // DNS suffix of host-form names: with "localhost", `cam-1.localhost` names agent cam-1. Empty
  // disables the host form (and the `<agent>.<suffix>` spelling of CONNECT).
  std::string host_suffix;
};

struct FrontendRoute {
  FrontendForm form = FrontendForm::kRtspHost;
  std::string agent_id;  // canonical
  // Service to open: "rtsp" (RTSP forms, RTSP over HTTP), "http" (HTTP forms), or CONNECT's port
  // text when it is a valid service name (digits are valid names too: "554"). Empty when
  // CONNECT's port text is only usable as a number. The lead matches `service`, then `port`,
  // against the services the agent exposes.
  std::string service;
  std::optional<uint16_t> port;  // CONNECT only: the port text as a number 1..65535
  // Path forms: "/<agent>", the prefix removed from request paths. Empty otherwise.
  std::string path_prefix;
  // Path forms: the authority (host[:port], no userinfo) the client addressed in its first
  // request (URL authority for RTSP, Host for HTTP). Later absolute URLs with this authority are
  // gateway URLs that must carry the agent prefix; other authorities (the camera's own address
  // taken from Content-Base) pass unchanged.
  std::string client_authority;
};

struct RouteDecision {
  FrontendError error = FrontendError::kOk;
  FrontendRoute route;  // meaningful only when error == kOk
};

// Routes the first request head of a frontend connection (parsed by proto::ParseRequestHead).
RouteDecision RouteFirstRequest(const proto::RequestHead& head, const FrontendRouteConfig& config);

// Checks one request head on a connection routed to `route` (every head, the first included)
// and computes the request-target to send to the camera. `camera_authority` is host:port of the
// service the agent exposes (e.g. "127.0.0.1:554", "[::1]:554"). On kOk, *camera_target is the
// rewritten target, or empty when the target passes byte-exact. Heads naming another agent are
// refused (kOtherAgent); `*` and absolute URLs with another authority (e.g. the camera's own, from
// Content-Base) pass unchanged. Not for kConnect / kRtspOverHttp, whose streams are not parsed.
FrontendError CheckRoutedRequest(const proto::RequestHead& head, const FrontendRoute& route,
                                 const FrontendRouteConfig& config,
                                 std::string_view camera_authority, std::string* camera_target);

// GET/POST announcing application/x-rtsp-tunnelled (Accept or Content-Type).
bool IsRtspOverHttp(const proto::RequestHead& head);

// Standard reason phrase ("Forbidden"); "Unknown" for codes we never send.
std::string_view StatusPhrase(FrontendProtocol protocol, int status);

// Error answers. RTSP: `RTSP/1.0 <code> <phrase> (<detail>)`, CSeq echoed when non-empty,
// Content-Length: 0. HTTP: text/plain body "<detail>\n" and Connection: close. A 405 carries Allow.
// `cseq` and `detail` must hold no CR/LF (values from a parsed head never do).
std::string BuildErrorResponse(FrontendProtocol protocol, int status, std::string_view detail,
                               std::string_view cseq);
std::string BuildErrorResponse(FrontendProtocol protocol, FrontendError error,
                               std::string_view cseq);
// HTTP 407 asking for the frontend's bearer token (Proxy-Authenticate: Bearer).
std::string BuildProxyAuthRequired();
// Redirects: RTSP 302 / HTTP 307 with Location. nullopt if `location` holds a control character.
std::optional<std::string> BuildRedirectResponse(FrontendProtocol protocol,
                                                 std::string_view location, std::string_view cseq);

}  // namespace camtunnel::gateway
