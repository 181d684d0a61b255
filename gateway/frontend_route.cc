#include "gateway/frontend_route.h"

#include <array>
#include <charconv>
#include <string>

#include "proto/http_status.h"
#include "proto/identifiers.h"

namespace camtunnel::gateway {
namespace {

using proto::EqualsIgnoreCase;

constexpr uint16_t kRtspDefaultPort = 554;
constexpr uint16_t kHttpDefaultPort = 80;
constexpr std::string_view kRtspTunnelledType = "application/x-rtsp-tunnelled";

// RFC 2326 client->server methods. REDIRECT is server->client only; the other RTSP 1.0 methods
// (ANNOUNCE/RECORD included) are the camera's business to accept or not.
constexpr std::array<std::string_view, 10> kRtspMethods = {
    "OPTIONS",  "DESCRIBE",      "SETUP",         "PLAY",     "PAUSE",
    "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER", "ANNOUNCE", "RECORD"};
constexpr std::string_view kRtspAllow =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER, ANNOUNCE, "
    "RECORD";
// Camera HTTP APIs use the usual methods. TRACE is refused: it reflects request headers and has
// no use through a tunnel. CONNECT is only meaningful as a connection's first request.
constexpr std::array<std::string_view, 7> kHttpMethods = {"GET",    "HEAD",    "POST", "PUT",
                                                          "DELETE", "OPTIONS", "PATCH"};
constexpr std::string_view kHttpAllow = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

template <size_t N>
bool Contains(const std::array<std::string_view, N>& list, std::string_view value) {
  for (std::string_view item : list) {
    if (item == value) {
      return true;
    }
  }
  return false;
}

// Method names are case-sensitive tokens (RFC 9110 9.1, RFC 2326 6.1).
FrontendError CheckMethod(FrontendProtocol protocol, std::string_view method) {
  if (protocol == FrontendProtocol::kRtsp) {
    if (Contains(kRtspMethods, method)) {
      return FrontendError::kOk;
    }
    return method == "REDIRECT" ? FrontendError::kMethodNotAllowed
                                : FrontendError::kMethodNotImplemented;
  }
  if (Contains(kHttpMethods, method)) {
    return FrontendError::kOk;
  }
  return method == "TRACE" || method == "CONNECT" ? FrontendError::kMethodNotAllowed
                                                  : FrontendError::kMethodNotImplemented;
}

bool IsDigits(std::string_view text) {
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return !text.empty();
}

std::optional<uint16_t> ParsePort(std::string_view text) {
  if (!IsDigits(text) || text.size() > 5) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// RFC 3986 authority: [userinfo@]host[:port]; host may be an IPv6 literal in brackets.
struct Authority {
  std::string_view userinfo;  // without the '@'; empty if absent
  bool has_userinfo = false;
  std::string_view host;         // as written (brackets kept)
  std::string_view host_port;    // the authority without userinfo
  std::optional<uint16_t> port;  // absent (or empty "host:") means the scheme's default
};

bool ParseAuthority(std::string_view text, Authority* out) {
  *out = Authority{};
  size_t at = text.rfind('@');
  if (at != std::string_view::npos) {
    out->userinfo = text.substr(0, at);
    out->has_userinfo = true;
    text = text.substr(at + 1);
  }
  out->host_port = text;
  std::string_view rest;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    out->host = text.substr(0, close + 1);
    rest = text.substr(close + 1);
  } else {
    size_t colon = text.find(':');
    out->host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  // Inside brackets only an IPv6 address (or IPvFuture) may appear; elsewhere no delimiter.
  if (out->host.empty()) {
    return false;
  }
  std::string_view bare =
      out->host[0] == '[' ? out->host.substr(1, out->host.size() - 2) : out->host;
  if (bare.empty() || bare.find_first_of("[]@/?#") != std::string_view::npos) {
    return false;
  }
  if (!rest.empty()) {
    if (rest[0] != ':') {
      return false;
    }
    std::string_view port_text = rest.substr(1);
    if (!port_text.empty()) {
      out->port = ParsePort(port_text);
      if (!out->port) {
        return false;
      }
    }
  }
  return true;
}

bool SameAuthority(const Authority& a, const Authority& b, uint16_t default_port) {
  return EqualsIgnoreCase(a.host, b.host) &&
         a.port.value_or(default_port) == b.port.value_or(default_port);
}

// scheme "://" authority path-abempty [ "?" query ] [ "#" fragment ]
struct Url {
  std::string_view scheme;
  Authority authority;
  std::string_view path;  // from the first '/', '?' or '#' after the authority; may be empty
};

bool ParseAbsoluteUrl(std::string_view target, std::string_view scheme, Url* out) {
  size_t sep = target.find("://");
  if (sep == std::string_view::npos || !EqualsIgnoreCase(target.substr(0, sep), scheme)) {
    return false;
  }
  out->scheme = target.substr(0, sep);
  std::string_view rest = target.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  out->path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  return ParseAuthority(rest.substr(0, end), &out->authority);
}

// "<label>.<suffix>" -> label (not yet validated). The suffix is compared case-insensitively.
std::optional<std::string_view> HostFormLabel(std::string_view host, std::string_view suffix) {
  if (suffix.empty() || host.size() <= suffix.size() + 1) {
    return std::nullopt;
  }
  size_t dot = host.size() - suffix.size() - 1;
  if (host[dot] != '.' || !EqualsIgnoreCase(host.substr(dot + 1), suffix)) {
    return std::nullopt;
  }
  return host.substr(0, dot);
}

// "/seg/rest?q" -> {"seg", "/rest?q"}; "/seg" -> {"seg", ""}; "/seg?q" -> {"seg", "?q"}.
bool SplitFirstSegment(std::string_view path, std::string_view* segment, std::string_view* rest) {
  if (path.empty() || path[0] != '/') {
    return false;
  }
  size_t end = path.find_first_of("/?#", 1);
  *segment = path.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1);
  *rest = end == std::string_view::npos ? std::string_view() : path.substr(end);
  return true;
}

// The camera-side path for what followed "/<agent>": it always starts with '/'.
void AppendCameraPath(std::string_view rest, std::string* out) {
  if (rest.empty() || rest[0] != '/') {
    out->push_back('/');
  }
  out->append(rest);
}

// A label that names an agent: this connection's (kOk), another one (403), or nothing valid.
FrontendError MatchAgent(std::string_view label, std::string_view agent) {
  if (label == agent) {
    return FrontendError::kOk;
  }
  return proto::IsCanonicalAgentId(label) ? FrontendError::kOtherAgent
                                          : FrontendError::kNonCanonicalAgent;
}

// True if a comma-separated list of media types (Accept) or a single one (Content-Type) holds
// `type`, parameters ignored.
bool HasMediaType(std::string_view list, std::string_view type) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    item = item.substr(0, item.find(';'));
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (EqualsIgnoreCase(item, type)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool IsPathForm(FrontendForm form) {
  return form == FrontendForm::kRtspPath || form == FrontendForm::kHttpPath;
}

// HTTP/1.1 requires exactly one Host (RFC 9112 3.2); HTTP/1.0 allows none. A userinfo in Host
// is invalid. *host is left empty when absent.
FrontendError ParseHostHeader(const proto::RequestHead& head, Authority* host) {
  *host = Authority{};
  size_t count = head.headers.Count("Host");
  if (count > 1 || (count == 0 && head.protocol == proto::Protocol::kHttp11)) {
    return FrontendError::kBadHost;
  }
  if (count == 0) {
    return FrontendError::kOk;
  }
  std::string_view value = *head.headers.Find("Host");
  if (!ParseAuthority(value, host) || host->has_userinfo) {
    return FrontendError::kBadHost;
  }
  return FrontendError::kOk;
}

// Decision for an absolute URL on a routed connection (see CheckRoutedRequest).
FrontendError CheckAbsoluteUrl(const Url& url, const FrontendRoute& route,
                               const FrontendRouteConfig& config, std::string_view camera_authority,
                               uint16_t default_port, std::string* camera_target) {
  // A host-form name under our suffix always names an agent, in any form of connection.
  if (std::optional<std::string_view> label =
          HostFormLabel(url.authority.host, config.host_suffix)) {
    return MatchAgent(*label, route.agent_id);
  }
  Authority client;
  if (!IsPathForm(route.form) || !ParseAuthority(route.client_authority, &client) ||
      !SameAuthority(url.authority, client, default_port)) {
    // Not addressed to the gateway as the client first named it: the camera's own URL (taken
    // from Content-Base, e.g. its LAN address) or some other authority. It names no agent and
    // the bytes only ever reach this connection's camera, so it passes unchanged.
    return FrontendError::kOk;
  }
  std::string_view segment;
  std::string_view rest;
  if (SplitFirstSegment(url.path, &segment, &rest) && segment == route.agent_id) {
    camera_target->append(url.scheme);
    camera_target->append("://");
    if (url.authority.has_userinfo) {
      camera_target->append(url.authority.userinfo);
      camera_target->push_back('@');
    }
    camera_target->append(camera_authority);
    AppendCameraPath(rest, camera_target);
    return FrontendError::kOk;
  }
  // Only reachable when the camera listens on the very authority the client used for the
  // gateway (a test setup on one host): then the URL is the camera's own.
  Authority camera;
  if (ParseAuthority(camera_authority, &camera) &&
      SameAuthority(url.authority, camera, default_port)) {
    return FrontendError::kOk;
  }
  if (segment.empty()) {
    return FrontendError::kNoAgent;
  }
  return MatchAgent(segment, route.agent_id);
}

RouteDecision Fail(FrontendError error) {
  RouteDecision decision;
  decision.error = error;
  return decision;
}

RouteDecision HostRoute(FrontendForm form, std::string_view agent, std::string_view service) {
  RouteDecision decision;
  decision.route.form = form;
  decision.route.agent_id = std::string(agent);
  decision.route.service = std::string(service);
  return decision;
}

RouteDecision PathRoute(FrontendForm form, std::string_view path, std::string_view authority,
                        std::string_view service) {
  std::string_view segment;
  std::string_view rest;
  if (!SplitFirstSegment(path, &segment, &rest) || segment.empty()) {
    return Fail(FrontendError::kNoAgent);
  }
  if (!proto::IsCanonicalAgentId(segment)) {
    return Fail(FrontendError::kNonCanonicalAgent);
  }
  RouteDecision decision = HostRoute(form, segment, service);
  decision.route.path_prefix = "/" + std::string(segment);
  decision.route.client_authority = std::string(authority);
  return decision;
}

RouteDecision RouteRtsp(const proto::RequestHead& head, const FrontendRouteConfig& config) {
  if (FrontendError error = CheckMethod(FrontendProtocol::kRtsp, head.method);
      error != FrontendError::kOk) {
    return Fail(error);
  }
  if (head.target == "*") {
    return Fail(FrontendError::kNoAgent);
  }
  Url url;
  if (!ParseAbsoluteUrl(head.target, "rtsp", &url)) {
    return Fail(FrontendError::kBadUrl);
  }
  if (std::optional<std::string_view> label =
          HostFormLabel(url.authority.host, config.host_suffix)) {
    if (!proto::IsCanonicalAgentId(*label)) {
      return Fail(FrontendError::kNonCanonicalAgent);
    }
    return HostRoute(FrontendForm::kRtspHost, *label, "rtsp");
  }
  return PathRoute(FrontendForm::kRtspPath, url.path, url.authority.host_port, "rtsp");
}

RouteDecision RouteConnect(const proto::RequestHead& head, const FrontendRouteConfig& config) {
  // authority-form "host:port" (RFC 9110 9.3.6); here the port may also be a service name.
  size_t colon = head.target.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == head.target.size()) {
    return Fail(FrontendError::kBadConnectTarget);
  }
  std::string_view host = head.target.substr(0, colon);
  std::string_view port_text = head.target.substr(colon + 1);
  if (host.find_first_of("[]@/:") != std::string_view::npos) {
    return Fail(FrontendError::kBadConnectTarget);
  }
  std::string_view label = host;
  if (host.find('.') != std::string_view::npos) {
    std::optional<std::string_view> suffixed = HostFormLabel(host, config.host_suffix);
    if (!suffixed) {
      return Fail(FrontendError::kNoAgent);
    }
    label = *suffixed;
  }
  if (!proto::IsCanonicalAgentId(label)) {
    return Fail(FrontendError::kNonCanonicalAgent);
  }
  std::optional<uint16_t> port = ParsePort(port_text);
  if (port == 0) {
    port.reset();
  }
  bool is_name = proto::IsValidServiceName(port_text);
  if (!port && !is_name) {
    return Fail(FrontendError::kBadConnectTarget);
  }
  RouteDecision decision = HostRoute(FrontendForm::kConnect, label, is_name ? port_text : "");
  decision.route.port = port;
  return decision;
}

RouteDecision RouteHttp(const proto::RequestHead& head, const FrontendRouteConfig& config) {
  if (FrontendError error = CheckMethod(FrontendProtocol::kHttp, head.method);
      error != FrontendError::kOk) {
    return Fail(error);
  }
  Authority host;
  if (FrontendError error = ParseHostHeader(head, &host); error != FrontendError::kOk) {
    return Fail(error);
  }
  // The absolute-form's authority wins over Host (RFC 9112 3.2.2).
  std::string_view path;
  Url url;
  if (!head.target.empty() && head.target[0] == '/') {
    path = head.target;
  } else if (head.target != "*") {
    if (!ParseAbsoluteUrl(head.target, "http", &url)) {
      return Fail(FrontendError::kBadUrl);
    }
    host = url.authority;
    path = url.path;
  }
  bool tunnelled = IsRtspOverHttp(head);
  if (std::optional<std::string_view> label = HostFormLabel(host.host, config.host_suffix)) {
    if (!proto::IsCanonicalAgentId(*label)) {
      return Fail(FrontendError::kNonCanonicalAgent);
    }
    return tunnelled ? HostRoute(FrontendForm::kRtspOverHttp, *label, "rtsp")
                     : HostRoute(FrontendForm::kHttpHost, *label, "http");
  }
  if (tunnelled) {
    return Fail(FrontendError::kFormNotAllowed);
  }
  return PathRoute(FrontendForm::kHttpPath, path, host.host_port, "http");
}

}  // namespace

int FrontendErrorStatus(FrontendError error) {
  switch (error) {
    case FrontendError::kOk:
      return 200;
    case FrontendError::kHeadTooLarge:
    case FrontendError::kTooManyHeaders:
      return 431;
    case FrontendError::kOtherAgent:
    case FrontendError::kFormNotAllowed:
      return 403;
    case FrontendError::kMethodNotAllowed:
      return 405;
    case FrontendError::kMethodNotImplemented:
      return 501;
    case FrontendError::kMalformedHead:
    case FrontendError::kBadUrl:
    case FrontendError::kNoAgent:
    case FrontendError::kNonCanonicalAgent:
    case FrontendError::kProtocolMismatch:
    case FrontendError::kBadHost:
    case FrontendError::kBadConnectTarget:
    case FrontendError::kBadBodyLength:
    case FrontendError::kBadChunkedBody:
      return 400;
  }
  return 400;
}

std::string_view FrontendErrorReason(FrontendError error) {
  switch (error) {
    case FrontendError::kOk:
      return "ok";
    case FrontendError::kMalformedHead:
      return "malformed request head";
    case FrontendError::kHeadTooLarge:
      return "request head larger than 8 KiB";
    case FrontendError::kTooManyHeaders:
      return "more than 64 header fields";
    case FrontendError::kBadUrl:
      return "malformed request URL";
    case FrontendError::kNoAgent:
      return "request names no agent: use <agent>.<suffix> as host or /<agent>/ as first path "
             "segment";
    case FrontendError::kNonCanonicalAgent:
      return "agent id is not canonical: 1-63 characters of lowercase a-z, 0-9 and '-' (upper "
             "case is refused, not folded)";
    case FrontendError::kOtherAgent:
      return "request names another agent";
    case FrontendError::kFormNotAllowed:
      return "RTSP over HTTP needs the host form <agent>.<suffix>: its base64 body cannot be "
             "rewritten";
    case FrontendError::kMethodNotAllowed:
      return "method not allowed through the gateway";
    case FrontendError::kMethodNotImplemented:
      return "method not implemented";
    case FrontendError::kProtocolMismatch:
      return "request protocol differs from the connection's";
    case FrontendError::kBadHost:
      return "HTTP/1.1 request needs exactly one valid Host header";
    case FrontendError::kBadConnectTarget:
      return "CONNECT target must be <agent>:<service name or port>";
    case FrontendError::kBadBodyLength:
      return "invalid or conflicting Content-Length / Transfer-Encoding";
    case FrontendError::kBadChunkedBody:
      return "malformed chunked request body";
  }
  return "unknown error";
}

std::string_view FrontendErrorName(FrontendError error) {
  switch (error) {
    case FrontendError::kOk:
      return "ok";
    case FrontendError::kMalformedHead:
      return "malformed_head";
    case FrontendError::kHeadTooLarge:
      return "head_too_large";
    case FrontendError::kTooManyHeaders:
      return "too_many_headers";
    case FrontendError::kBadUrl:
      return "bad_url";
    case FrontendError::kNoAgent:
      return "no_agent";
    case FrontendError::kNonCanonicalAgent:
      return "non_canonical_agent";
    case FrontendError::kOtherAgent:
      return "other_agent";
    case FrontendError::kFormNotAllowed:
      return "form_not_allowed";
    case FrontendError::kMethodNotAllowed:
      return "method_not_allowed";
    case FrontendError::kMethodNotImplemented:
      return "method_not_implemented";
    case FrontendError::kProtocolMismatch:
      return "protocol_mismatch";
    case FrontendError::kBadHost:
      return "bad_host";
    case FrontendError::kBadConnectTarget:
      return "bad_connect_target";
    case FrontendError::kBadBodyLength:
      return "bad_body_length";
    case FrontendError::kBadChunkedBody:
      return "bad_chunked_body";
  }
  return "unknown";
}

FrontendError FrontendErrorFromHeadResult(proto::HeadResult result) {
  switch (result) {
    case proto::HeadResult::kTooLarge:
      return FrontendError::kHeadTooLarge;
    case proto::HeadResult::kTooManyHeaders:
      return FrontendError::kTooManyHeaders;
    case proto::HeadResult::kComplete:
      return FrontendError::kOk;
    case proto::HeadResult::kNeedMore:  // a caller asking has decided the head is over
    case proto::HeadResult::kMalformed:
      return FrontendError::kMalformedHead;
  }
  return FrontendError::kMalformedHead;
}

FrontendProtocol ProtocolOfForm(FrontendForm form) {
  return form == FrontendForm::kRtspHost || form == FrontendForm::kRtspPath
             ? FrontendProtocol::kRtsp
             : FrontendProtocol::kHttp;
}

FrontendProtocol SniffProtocol(std::string_view first_bytes) {
  std::string_view line = first_bytes.substr(0, first_bytes.find('\n'));
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  constexpr std::string_view kRtspVersion = " RTSP/1.0";
  return line.size() >= kRtspVersion.size() &&
                 line.substr(line.size() - kRtspVersion.size()) == kRtspVersion
             ? FrontendProtocol::kRtsp
             : FrontendProtocol::kHttp;
}

RouteDecision RouteFirstRequest(const proto::RequestHead& head, const FrontendRouteConfig& config) {
  if (head.protocol == proto::Protocol::kRtsp10) {
    return RouteRtsp(head, config);
  }
  if (head.method == "CONNECT") {
    return RouteConnect(head, config);
  }
  return RouteHttp(head, config);
}

FrontendError CheckRoutedRequest(const proto::RequestHead& head, const FrontendRoute& route,
                                 const FrontendRouteConfig& config,
                                 std::string_view camera_authority, std::string* camera_target) {
  camera_target->clear();
  FrontendProtocol protocol = ProtocolOfForm(route.form);
  bool rtsp_head = head.protocol == proto::Protocol::kRtsp10;
  if (rtsp_head != (protocol == FrontendProtocol::kRtsp)) {
    return FrontendError::kProtocolMismatch;
  }
  if (FrontendError error = CheckMethod(protocol, head.method); error != FrontendError::kOk) {
    return error;
  }
  if (protocol == FrontendProtocol::kRtsp) {
    if (head.target == "*") {
      return FrontendError::kOk;
    }
    Url url;
    if (!ParseAbsoluteUrl(head.target, "rtsp", &url)) {
      return FrontendError::kBadUrl;
    }
    return CheckAbsoluteUrl(url, route, config, camera_authority, kRtspDefaultPort, camera_target);
  }

  Authority host;
  if (FrontendError error = ParseHostHeader(head, &host); error != FrontendError::kOk) {
    return error;
  }
  bool absolute_form = !head.target.empty() && head.target[0] != '/' && head.target != "*";
  if (IsPathForm(route.form)) {
    if (IsRtspOverHttp(head)) {
      return FrontendError::kFormNotAllowed;
    }
  } else if (std::optional<std::string_view> label = HostFormLabel(host.host, config.host_suffix);
             label && !absolute_form) {
    // Host form: a keep-alive client pools connections per Host, so another agent's name here
    // means a confused client; in path form Host is the gateway's and is left alone. An
    // absolute-form target overrides Host (RFC 9112 3.2.2) and is checked below instead.
    if (FrontendError error = MatchAgent(*label, route.agent_id); error != FrontendError::kOk) {
      return error;
    }
  }
  if (head.target == "*") {
    return FrontendError::kOk;
  }
  if (!absolute_form) {
    if (!IsPathForm(route.form)) {
      return FrontendError::kOk;
    }
    std::string_view segment;
    std::string_view rest;
    SplitFirstSegment(head.target, &segment, &rest);
    if (segment == route.agent_id) {
      AppendCameraPath(rest, camera_target);
      return FrontendError::kOk;
    }
    return segment.empty() ? FrontendError::kNoAgent : MatchAgent(segment, route.agent_id);
  }
  Url url;
  if (!ParseAbsoluteUrl(head.target, "http", &url)) {
    return FrontendError::kBadUrl;
  }
  return CheckAbsoluteUrl(url, route, config, camera_authority, kHttpDefaultPort, camera_target);
}

bool IsRtspOverHttp(const proto::RequestHead& head) {
  if (head.method != "GET" && head.method != "POST") {
    return false;
  }
  std::optional<std::string_view> accept = head.headers.Find("Accept");
  if (accept && HasMediaType(*accept, kRtspTunnelledType)) {
    return true;
  }
  std::optional<std::string_view> content_type = head.headers.Find("Content-Type");
  return content_type &&
         HasMediaType(content_type->substr(0, content_type->find(',')), kRtspTunnelledType);
}

std::string_view StatusPhrase(FrontendProtocol protocol, int status) {
  // RTSP/1.0 (RFC 2326) kept HTTP/1.1's older names for these; everything else is the one table.
  if (protocol == FrontendProtocol::kRtsp) {
    switch (status) {
      case 302:
        return "Moved Temporarily";
      case 413:
        return "Request Entity Too Large";
      case 414:
        return "Request-URI Too Large";
      default:
        break;
    }
  }
  return proto::HttpReasonPhrase(status);
}

std::string BuildErrorResponse(FrontendProtocol protocol, int status, std::string_view detail,
                               std::string_view cseq) {
  std::string code = std::to_string(status);
  std::string_view phrase = StatusPhrase(protocol, status);
  std::string response;
  response.reserve(192 + detail.size() + cseq.size());
  if (protocol == FrontendProtocol::kRtsp) {
    // RTSP clients (ffmpeg, live555) print the reason phrase, so the detail goes there: the
    // operator reads "400 Bad Request (agent id is not canonical ...)" in the media server log.
    response.append("RTSP/1.0 ").append(code).append(" ").append(phrase);
    if (!detail.empty()) {
      response.append(" (").append(detail).append(")");
    }
    response.append("\r\n");
    if (!cseq.empty()) {
      response.append("CSeq: ").append(cseq).append("\r\n");
    }
    if (status == 405) {
      response.append("Allow: ").append(kRtspAllow).append("\r\n");
    }
    response.append("Content-Length: 0\r\n\r\n");
    return response;
  }
  std::string body = std::string(detail.empty() ? phrase : detail) + "\n";
  response.append("HTTP/1.1 ").append(code).append(" ").append(phrase).append("\r\n");
  response.append("Content-Type: text/plain\r\n");
  response.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  if (status == 405) {
    response.append("Allow: ").append(kHttpAllow).append("\r\n");
  }
  response.append("Connection: close\r\n\r\n").append(body);
  return response;
}

std::string BuildErrorResponse(FrontendProtocol protocol, FrontendError error,
                               std::string_view cseq) {
  return BuildErrorResponse(protocol, FrontendErrorStatus(error), FrontendErrorReason(error), cseq);
}

std::string BuildProxyAuthRequired() {
  constexpr std::string_view kBody = "bearer token required in Proxy-Authorization\n";
  std::string response =
      "HTTP/1.1 407 Proxy Authentication Required\r\n"
      "Proxy-Authenticate: Bearer realm=\"camtunnel\"\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Length: ";
  response.append(std::to_string(kBody.size())).append("\r\nConnection: close\r\n\r\n");
  response.append(kBody);
  return response;
}

std::optional<std::string> BuildRedirectResponse(FrontendProtocol protocol,
                                                 std::string_view location, std::string_view cseq) {
  for (char c : location) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return std::nullopt;
    }
  }
  std::string response;
  if (protocol == FrontendProtocol::kRtsp) {
    response.append("RTSP/1.0 302 Moved Temporarily\r\n");
    if (!cseq.empty()) {
      response.append("CSeq: ").append(cseq).append("\r\n");
    }
    response.append("Location: ").append(location).append("\r\n");
    response.append("Content-Length: 0\r\n\r\n");
    return response;
  }
  response.append("HTTP/1.1 307 Temporary Redirect\r\n");
  response.append("Location: ").append(location).append("\r\n");
  response.append("Content-Length: 0\r\nConnection: close\r\n\r\n");
  return response;
}

}  // namespace camtunnel::gateway
