// See http_answer.h.
#include "proto/http_answer.h"

#include "proto/http_status.h"

namespace camtunnel::proto {

std::string FormatHttpAnswerHead(const HttpAnswerHead& head) {
  std::string out = "HTTP/1.1 ";
  out.append(std::to_string(head.status)).append(" ").append(HttpReasonPhrase(head.status));
  out.append("\r\n");
  if (!head.content_type.empty()) {
    out.append("Content-Type: ").append(head.content_type).append("\r\n");
  }
  if (head.content_length) {
    out.append("Content-Length: ").append(std::to_string(*head.content_length)).append("\r\n");
  }
  out.append(head.keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  for (const HeaderField& f : head.extra_fields) {
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

std::string FormatHttpAnswer(int status, std::string_view content_type, std::string_view body,
                             bool keep_alive, std::span<const HeaderField> extra) {
  std::string out = FormatHttpAnswerHead({.status = status,
                                          .content_type = content_type,
                                          .content_length = body.size(),
                                          .keep_alive = keep_alive,
                                          .extra_fields = extra});
  out.append(body);
  return out;
}

void AppendJsonString(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (u < 0x20 || u == 0x7f) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xf]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

std::string JsonErrorBody(std::string_view message) {
  std::string out = R"({"error":)";
  AppendJsonString(&out, message);
  out.append("}\n");
  return out;
}

}  // namespace camtunnel::proto
