// See http_answer.h.
#include "manager/http_answer.h"

namespace camtunnel::manager {
namespace {

std::string_view Phrase(int status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    default:
      return "Service Unavailable";
  }
}

}  // namespace

std::string HttpAnswer(int status, std::string_view content_type, std::string_view body,
                       int64_t retry_after_ms) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out.append(Phrase(status)).append("\r\nContent-Type: ").append(content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  out.append("\r\nConnection: close\r\n");
  if (retry_after_ms >= 0) {
    out.append("Retry-After: ").append(std::to_string((retry_after_ms + 999) / 1000));
    out.append("\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

std::string_view SourceAddress(std::string_view peer) {
  if (peer.starts_with('[')) {
    const size_t close = peer.find(']');
    return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
  }
  const size_t colon = peer.rfind(':');
  return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

}  // namespace camtunnel::manager
